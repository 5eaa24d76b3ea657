"""Queries on subscribers (people)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.scope import SenderIds, of_senders, person_visible
from app.models import MailingList, Subscriber, Subscription
from app.models.base import utcnow
from app.subscriptions.repository import GateVerdict, gate_verdict


async def get_by_email(session: AsyncSession, email: str) -> Subscriber | None:
    return (await session.scalars(select(Subscriber).where(Subscriber.email == email))).first()


async def get_or_create(
    session: AsyncSession,
    *,
    email: str,
    address_hash: str,
    name: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> tuple[Subscriber, bool]:
    """Return the subscriber for a normalised address, creating it if needed.

    An INSERT … ON CONFLICT DO NOTHING, so two signups racing for one new address both end on
    the same row instead of one of them failing on the unique constraint.
    """
    existing = await get_by_email(session, email)
    if existing is not None:
        return existing, False
    now = utcnow()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(Subscriber)
        .values(
            email=email,
            address_hash=address_hash,
            name=name,
            attributes=attributes or {},
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(Subscriber.id)
    )
    created = result.scalar_one_or_none() is not None
    subscriber = await get_by_email(session, email)
    assert subscriber is not None
    return subscriber, created


async def get(session: AsyncSession, subscriber_id: int) -> Subscriber | None:
    return await session.get(Subscriber, subscriber_id)


async def get_visible(
    session: AsyncSession, senders: SenderIds, subscriber_id: int
) -> Subscriber | None:
    """The person if one of the key's senders holds them (app.auth.scope), else None (DS-6)."""
    if senders is None:
        return await session.get(Subscriber, subscriber_id)
    stmt = select(Subscriber).where(
        Subscriber.id == subscriber_id, person_visible(Subscriber.id, senders)
    )
    return (await session.scalars(stmt)).first()


async def page(
    session: AsyncSession,
    *,
    senders: SenderIds,
    email: str | None,
    list_id: int | None,
    status: str | None,
    after_id: int | None,
    limit: int,
) -> Sequence[Subscriber]:
    """Subscribers by id, keyset-paginated, optionally only those with a subscription to the
    list and/or in the status given; those the key's senders hold only."""
    stmt = (
        select(Subscriber)
        .where(person_visible(Subscriber.id, senders))
        .order_by(Subscriber.id)
        .limit(limit)
    )
    if email is not None:
        stmt = stmt.where(Subscriber.email == email)
    if list_id is not None or status is not None:
        match = select(Subscription.id).where(Subscription.subscriber_id == Subscriber.id)
        if list_id is not None:
            match = match.where(Subscription.list_id == list_id)
        if status is not None:
            match = match.where(Subscription.status == status)
        if senders is not None:  # the status of a subscription the key can see
            match = match.where(
                Subscription.list_id.in_(
                    select(MailingList.id).where(of_senders(MailingList.sender_id, senders))
                )
            )
        stmt = stmt.where(match.exists())
    if after_id is not None:
        stmt = stmt.where(Subscriber.id > after_id)
    return (await session.scalars(stmt)).all()


async def subscriptions_with_gate(
    session: AsyncSession, subscriber_ids: Sequence[int], senders: SenderIds = None
) -> dict[int, list[tuple[Subscription, GateVerdict]]]:
    """The subscriptions of some subscribers, each with the send gate's verdict now (SG-1);
    those to the key's senders' lists only (DS-6)."""
    found: dict[int, list[tuple[Subscription, GateVerdict]]] = {i: [] for i in subscriber_ids}
    if not subscriber_ids:
        return found
    rows = await session.execute(
        select(Subscription, gate_verdict())
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(
            Subscription.subscriber_id.in_(subscriber_ids),
            of_senders(MailingList.sender_id, senders),
        )
        .order_by(Subscription.subscriber_id, Subscription.list_id)
    )
    for subscription, verdict in rows:
        found[subscription.subscriber_id].append((subscription, GateVerdict(verdict)))
    return found
