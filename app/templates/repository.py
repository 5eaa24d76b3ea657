"""Queries on templates, and the lists a preview is rendered for."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MailingList, Subscription, Template


async def get(session: AsyncSession, template_id: int) -> Template | None:
    return await session.get(Template, template_id)


async def page(session: AsyncSession, *, after_id: int | None, limit: int) -> Sequence[Template]:
    """Templates by id, keyset-paginated; ``limit`` rows at most."""
    stmt = select(Template).order_by(Template.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(Template.id > after_id)
    return (await session.scalars(stmt)).all()


async def first_list_of(session: AsyncSession, subscriber_id: int) -> MailingList | None:
    """The list of the subscriber's first subscription (the oldest), if any."""
    stmt = (
        select(MailingList)
        .join(Subscription, Subscription.list_id == MailingList.id)
        .where(Subscription.subscriber_id == subscriber_id)
        .order_by(Subscription.id)
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def first_list(session: AsyncSession) -> MailingList | None:
    return (await session.scalars(select(MailingList).order_by(MailingList.id).limit(1))).first()
