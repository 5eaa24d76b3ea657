"""Queries on what a marketer edits: campaigns, their variants, and the listing of their
deliveries. The delivery ledger itself (claims, the send window, results, statistics) is
``app.sending.deliveries``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.scope import SenderIds, of_senders
from app.models import Campaign, CampaignVariant, Delivery, Subscriber


async def variants_of(
    session: AsyncSession, campaign_ids: Sequence[int]
) -> Sequence[CampaignVariant]:
    """The language versions of these campaigns, by language."""
    if not campaign_ids:
        return []
    return (
        await session.scalars(
            select(CampaignVariant)
            .where(CampaignVariant.campaign_id.in_(list(campaign_ids)))
            .order_by(CampaignVariant.campaign_id, CampaignVariant.language)
        )
    ).all()


async def list_campaigns(
    session: AsyncSession, *, senders: SenderIds = None, before_id: int | None, limit: int
) -> Sequence[Campaign]:
    """Newest first, keyset-paginated by id; a bound key's senders' only (DS-6)."""
    stmt = (
        select(Campaign)
        .where(of_senders(Campaign.sender_id, senders))
        .order_by(Campaign.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(Campaign.id < before_id)
    return (await session.scalars(stmt)).all()


async def list_deliveries(
    session: AsyncSession,
    campaign_id: int,
    *,
    status: str | None,
    after_id: int | None,
    limit: int,
) -> Sequence[Any]:
    stmt = (
        select(Delivery, Subscriber.email)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.campaign_id == campaign_id)
    )
    if status is not None:
        stmt = stmt.where(Delivery.status == status)
    if after_id is not None:
        stmt = stmt.where(Delivery.id > after_id)
    return (await session.execute(stmt.order_by(Delivery.id).limit(limit))).all()
