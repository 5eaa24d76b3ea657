"""Queries on subscribers (people)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.scope import SenderIds, of_senders, person_visible
from app.models import MailingList, Subscriber, Subscription
from app.subscriptions.repository import GateVerdict, gate_verdict


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
