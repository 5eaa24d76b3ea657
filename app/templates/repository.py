"""Queries on templates, and the lists a preview is rendered for."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.scope import SenderIds, of_senders
from app.models import MailingList, Subscription, Template


async def get(session: AsyncSession, template_id: int) -> Template | None:
    return await session.get(Template, template_id)


async def page(
    session: AsyncSession, *, senders: SenderIds, after_id: int | None, limit: int
) -> Sequence[Template]:
    """Templates by id, keyset-paginated; ``limit`` rows at most. A bound key's senders' own
    only: a shared template (no sender) is outside every bound key (app.auth.scope)."""
    stmt = (
        select(Template)
        .where(of_senders(Template.sender_id, senders))
        .order_by(Template.id)
        .limit(limit)
    )
    if after_id is not None:
        stmt = stmt.where(Template.id > after_id)
    return (await session.scalars(stmt)).all()


async def first_list_of(
    session: AsyncSession, subscriber_id: int, senders: SenderIds = None
) -> MailingList | None:
    """The list of the subscriber's first subscription (the oldest) to one of these senders'
    lists, if any."""
    stmt = (
        select(MailingList)
        .join(Subscription, Subscription.list_id == MailingList.id)
        .where(
            Subscription.subscriber_id == subscriber_id,
            of_senders(MailingList.sender_id, senders),
        )
        .order_by(Subscription.id)
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def first_list(session: AsyncSession, senders: SenderIds = None) -> MailingList | None:
    stmt = (
        select(MailingList)
        .where(of_senders(MailingList.sender_id, senders))
        .order_by(MailingList.id)
        .limit(1)
    )
    return (await session.scalars(stmt)).first()
