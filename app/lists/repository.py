"""Queries on mailing lists."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.scope import SenderIds, covers, of_senders
from app.models import MailingList, Subscription


async def get(session: AsyncSession, list_id: int) -> MailingList | None:
    return await session.get(MailingList, list_id)


async def get_visible(
    session: AsyncSession, senders: SenderIds, list_id: int
) -> MailingList | None:
    """The list if it belongs to one of the key's senders, else None, as if it did not exist
    (DS-6)."""
    mailing_list = await session.get(MailingList, list_id)
    if mailing_list is None or not covers(senders, mailing_list.sender_id):
        return None
    return mailing_list


async def slug_taken(session: AsyncSession, slug: str, *, other_than: int | None = None) -> bool:
    stmt = select(MailingList.id).where(MailingList.slug == slug)
    if other_than is not None:
        stmt = stmt.where(MailingList.id != other_than)
    return (await session.scalar(stmt)) is not None


async def page(
    session: AsyncSession,
    *,
    senders: SenderIds,
    sender_id: int | None,
    after_id: int | None,
    limit: int,
) -> Sequence[MailingList]:
    """Lists by id, keyset-paginated; ``limit`` rows at most; the key's senders' only."""
    stmt = (
        select(MailingList)
        .where(of_senders(MailingList.sender_id, senders))
        .order_by(MailingList.id)
        .limit(limit)
    )
    if sender_id is not None:
        stmt = stmt.where(MailingList.sender_id == sender_id)
    if after_id is not None:
        stmt = stmt.where(MailingList.id > after_id)
    return (await session.scalars(stmt)).all()


async def status_counts(
    session: AsyncSession, list_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """Subscriptions per list and status, in one grouped query for a page of lists."""
    counts: dict[int, dict[str, int]] = {list_id: {} for list_id in list_ids}
    if not list_ids:
        return counts
    rows = await session.execute(
        select(Subscription.list_id, Subscription.status, func.count())
        .where(Subscription.list_id.in_(list_ids))
        .group_by(Subscription.list_id, Subscription.status)
    )
    for list_id, status, count in rows:
        counts[list_id][status] = int(count)
    return counts


async def senders_of(session: AsyncSession, list_ids: Sequence[int]) -> dict[int, int]:
    """The sender id of each list given that exists."""
    if not list_ids:
        return {}
    rows = await session.execute(
        select(MailingList.id, MailingList.sender_id).where(MailingList.id.in_(list_ids))
    )
    return {list_id: sender_id for list_id, sender_id in rows}
