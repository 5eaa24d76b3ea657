"""Queries of the privacy domain: what is held about a person (DS-1), erasing it (DS-3), and
the facts and deletions of retention (CR-2)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.scope import SenderIds, of_senders, person_held_elsewhere, person_visible
from app.models import (
    Campaign,
    ConsentEvent,
    ConsentText,
    Delivery,
    ImportItem,
    LedgerTombstone,
    ListImport,
    MailingList,
    OutboxMessage,
    Sender,
    Subscriber,
    Subscription,
)
from app.models.enums import (
    DELIVERY_NOT_STARTED,
    DELIVERY_UNFINISHED,
    ConsentEventKind,
    OutboxStatus,
    SubscriptionStatus,
)

# Outbox rows that will never be sent again.
OUTBOX_FINAL = (OutboxStatus.SENT.value, OutboxStatus.FAILED.value, OutboxStatus.DROPPED.value)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --- disclosure (DS-1) -------------------------------------------------------------------------


async def get_subscriber(
    session: AsyncSession,
    subscriber_id: int,
    *,
    for_update: bool = False,
    senders: SenderIds = None,
) -> Subscriber | None:
    """The person; for a bound key, only one its senders hold (app.auth.scope, DS-6)."""
    stmt = select(Subscriber).where(Subscriber.id == subscriber_id)
    if senders is not None:
        stmt = stmt.where(person_visible(Subscriber.id, senders))
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def held_elsewhere(
    session: AsyncSession, subscriber_id: int, email: str, senders: frozenset[int]
) -> bool:
    """Whether another sender than the key's holds a record of the person or the address."""
    stmt = select(Subscriber.id).where(
        Subscriber.id == subscriber_id,
        or_(
            person_held_elsewhere(Subscriber.id, senders),
            select(ConsentEvent.id)
            .where(ConsentEvent.email == email, ConsentEvent.sender_id.not_in(sorted(senders)))
            .exists(),
        ),
    )
    return (await session.scalar(stmt)) is not None


async def subscriptions_of(
    session: AsyncSession, subscriber_id: int, senders: SenderIds = None
) -> Sequence[Row[Subscription, MailingList, Sender]]:
    result = await session.execute(
        select(Subscription, MailingList, Sender)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .join(Sender, Sender.id == MailingList.sender_id)
        .where(Subscription.subscriber_id == subscriber_id, of_senders(Sender.id, senders))
        .order_by(Subscription.id)
    )
    return result.all()


async def events_of_address(
    session: AsyncSession, email: str, senders: SenderIds = None
) -> list[tuple[ConsentEvent, str | None]]:
    """Every consent and opt-out event naming the address, with the wording it refers to."""
    rows = await session.execute(
        select(ConsentEvent, ConsentText.text)
        .outerjoin(ConsentText, ConsentText.hash == ConsentEvent.consent_text_hash)
        .where(ConsentEvent.email == email, of_senders(ConsentEvent.sender_id, senders))
        .order_by(ConsentEvent.id)
    )
    return [(event, wording) for event, wording in rows]


async def deliveries_of(
    session: AsyncSession, subscriber_id: int, senders: SenderIds = None
) -> Sequence[Row[Delivery, Campaign]]:
    result = await session.execute(
        select(Delivery, Campaign)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.subscriber_id == subscriber_id, of_senders(Campaign.sender_id, senders))
        .order_by(Delivery.id)
    )
    return result.all()


async def import_records_of(
    session: AsyncSession, email: str, senders: SenderIds = None
) -> Sequence[Row[ImportItem, ListImport]]:
    """The imports that brought the address, with their acquisition records (DS-4)."""
    result = await session.execute(
        select(ImportItem, ListImport)
        .join(ListImport, ListImport.id == ImportItem.import_id)
        .join(MailingList, MailingList.id == ListImport.list_id)
        .where(ImportItem.email == email, of_senders(MailingList.sender_id, senders))
        .order_by(ImportItem.id)
    )
    return result.all()


# --- erasure (DS-3) ----------------------------------------------------------------------------


async def lock_subscriptions(session: AsyncSession, subscriber_id: int) -> list[int]:
    """Lock the person's subscriptions in id order, as an opt-out or a signup does before it
    touches the subscriber row: the same order everywhere, so erasure cannot deadlock them."""
    stmt = (
        select(Subscription.id)
        .where(Subscription.subscriber_id == subscriber_id)
        .order_by(Subscription.id)
    )
    if _is_postgres(session):
        stmt = stmt.with_for_update()
    return list((await session.scalars(stmt)).all())


async def count_unsent_deliveries(session: AsyncSession, subscriber_id: int) -> int:
    found = await session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.subscriber_id == subscriber_id, Delivery.status.in_(DELIVERY_NOT_STARTED))
    )
    return int(found or 0)


async def delete_outbox_of(session: AsyncSession, subscriber_id: int) -> int:
    """The person's system mails (confirmation requests), sent or not."""
    result = await session.execute(
        delete(OutboxMessage)
        .where(
            OutboxMessage.subscription_id.in_(
                select(Subscription.id).where(Subscription.subscriber_id == subscriber_id)
            )
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


async def delete_deliveries_of(session: AsyncSession, subscriber_id: int) -> int:
    """Delete the person's delivery history. On PostgreSQL this waits for a worker holding one
    of the rows in its send window; once it commits, a worker that claimed a row earlier finds
    it gone and sends nothing (the window needs the row, ``sending``, to exist)."""
    result = await session.execute(
        delete(Delivery)
        .where(Delivery.subscriber_id == subscriber_id)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


async def delete_subscriptions_of(session: AsyncSession, subscriber_id: int) -> int:
    result = await session.execute(
        delete(Subscription)
        .where(Subscription.subscriber_id == subscriber_id)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


async def delete_subscriber(session: AsyncSession, subscriber_id: int) -> int:
    """The events and import items naming the person keep the address; their subscriber_id
    becomes NULL by the foreign key (ON DELETE SET NULL)."""
    result = await session.execute(
        delete(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


async def import_hold_of(session: AsyncSession, email: str) -> tuple[int, datetime | None]:
    """How many import items name the address, and until when their imports are held."""
    row = (
        await session.execute(
            select(func.count(ImportItem.id), func.max(ListImport.retain_until))
            .select_from(ImportItem)
            .join(ListImport, ListImport.id == ImportItem.import_id)
            .where(ImportItem.email == email)
        )
    ).one()
    return int(row[0] or 0), row[1]


# --- retention (CR-2) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeldEvent:
    """What the hold of one consent event is computed from, and what a tombstone keeps."""

    id: int
    email: str
    sender_id: int
    occurred_at: datetime
    retain_until: datetime | None
    prev_hash: str | None
    chain_hash: str | None


def held_event(event: ConsentEvent) -> HeldEvent:
    return HeldEvent(
        id=event.id,
        email=event.email,
        sender_id=event.sender_id,
        occurred_at=event.occurred_at,
        retain_until=event.retain_until,
        prev_hash=event.prev_hash,
        chain_hash=event.chain_hash,
    )


_HELD_COLUMNS = (
    ConsentEvent.id,
    ConsentEvent.email,
    ConsentEvent.sender_id,
    ConsentEvent.occurred_at,
    ConsentEvent.retain_until,
    ConsentEvent.prev_hash,
    ConsentEvent.chain_hash,
)


async def held_events_of_address(session: AsyncSession, email: str) -> list[HeldEvent]:
    stmt = select(*_HELD_COLUMNS).where(ConsentEvent.email == email).order_by(ConsentEvent.id)
    if _is_postgres(session):
        stmt = stmt.with_for_update()
    return [HeldEvent(*row) for row in (await session.execute(stmt)).all()]


async def hold_candidates(
    session: AsyncSession, *, after_id: int, now: datetime, limit: int
) -> list[HeldEvent]:
    """The next events, by id, whose hold was never computed or has run out: the only ones a
    purge could remove. Locked and skipped if locked on PostgreSQL, so two purges running at
    once never handle the same event."""
    stmt = (
        select(*_HELD_COLUMNS)
        .where(
            ConsentEvent.id > after_id,
            or_(ConsentEvent.retain_until.is_(None), ConsentEvent.retain_until <= now),
        )
        .order_by(ConsentEvent.id)
        .limit(limit)
    )
    if _is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return [HeldEvent(*row) for row in (await session.execute(stmt)).all()]


@dataclass
class AddressActivity:
    """Sending to one address by one sender: when it last went out, when the person last
    withdrew, and whether it is still going on (an active subscription or a delivery that may
    still be sent)."""

    last_send: datetime | None = None
    latest_withdrawal: datetime | None = None
    still_mailed: bool = False


async def address_activity(
    session: AsyncSession, emails: Collection[str]
) -> dict[tuple[str, int], AddressActivity]:
    """The activity of each (address, sender) pair among these addresses; pairs without any are
    absent. Four grouped queries, whatever the number of addresses."""
    found: dict[tuple[str, int], AddressActivity] = {}
    if not emails:
        return found
    addresses = list(emails)

    def of(email: str, sender_id: int) -> AddressActivity:
        return found.setdefault((email, sender_id), AddressActivity())

    sends = await session.execute(
        select(Subscriber.email, Campaign.sender_id, func.max(Delivery.sent_at))
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Subscriber.email.in_(addresses), Delivery.sent_at.is_not(None))
        .group_by(Subscriber.email, Campaign.sender_id)
    )
    for email, sender_id, last_send in sends:
        of(email, sender_id).last_send = last_send
    withdrawals = await session.execute(
        select(ConsentEvent.email, ConsentEvent.sender_id, func.max(ConsentEvent.occurred_at))
        .where(
            ConsentEvent.email.in_(addresses),
            ConsentEvent.kind == ConsentEventKind.WITHDRAW.value,
        )
        .group_by(ConsentEvent.email, ConsentEvent.sender_id)
    )
    for email, sender_id, occurred_at in withdrawals:
        of(email, sender_id).latest_withdrawal = occurred_at
    active = await session.execute(
        select(Subscriber.email, MailingList.sender_id)
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(
            Subscriber.email.in_(addresses),
            Subscription.status == SubscriptionStatus.ACTIVE.value,
        )
        .distinct()
    )
    pending_sends = await session.execute(
        select(Subscriber.email, Campaign.sender_id)
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Subscriber.email.in_(addresses), Delivery.status.in_(DELIVERY_UNFINISHED))
        .distinct()
    )
    for email, sender_id in [*active, *pending_sends]:
        of(email, sender_id).still_mailed = True
    return found


async def sender_policies(
    session: AsyncSession, sender_ids: Collection[int]
) -> dict[int, tuple[int, bool]]:
    """Each sender's (retention_days, under_measures_order)."""
    if not sender_ids:
        return {}
    rows = await session.execute(
        select(Sender.id, Sender.retention_days, Sender.under_measures_order).where(
            Sender.id.in_(list(sender_ids))
        )
    )
    return {sender_id: (days, bool(order)) for sender_id, days, order in rows}


_events: Table = ConsentEvent.__table__  # type: ignore[assignment]


async def set_retain_until(session: AsyncSession, holds: dict[int, datetime]) -> None:
    """Write computed holds: one executemany statement. ``retain_until`` is bookkeeping of the
    retention rule, not part of the evidence (the hash chain does not cover it)."""
    if not holds:
        return
    await session.execute(
        update(_events)
        .where(_events.c.id == bindparam("b_id"))
        .values(retain_until=bindparam("b_until")),
        [{"b_id": event_id, "b_until": until} for event_id, until in holds.items()],
    )


async def release_references(session: AsyncSession, event_ids: Sequence[int]) -> None:
    """Rows that point at events about to be purged stop pointing at them (the foreign keys
    would refuse the delete). None of these rows is mailable through such an event: an event
    of an address still being mailed is never purged."""
    ids = list(event_ids)
    for column in (
        Delivery.consent_event_id,
        Subscription.grant_event_id,
        Subscription.confirm_event_id,
        OutboxMessage.consent_event_id,
        ImportItem.consent_event_id,
    ):
        await session.execute(
            update(column.class_)
            .where(column.in_(ids))
            .values({column.key: None})
            .execution_options(synchronize_session=False)
        )


async def write_tombstones(
    session: AsyncSession, events: Sequence[HeldEvent], now: datetime
) -> int:
    """CR-2, CR-3: what remains of each purged event, so the sender's chain still verifies."""
    rows = [
        {
            "event_id": e.id,
            "sender_id": e.sender_id,
            "prev_hash": e.prev_hash,
            "chain_hash": e.chain_hash,
            "purged_at": now,
        }
        for e in events
        if e.chain_hash is not None
    ]
    if rows:
        await session.execute(insert(LedgerTombstone), rows)
    return len(rows)


async def delete_events(session: AsyncSession, event_ids: Sequence[int]) -> int:
    if not event_ids:
        return 0
    result = await session.execute(
        delete(ConsentEvent)
        .where(ConsentEvent.id.in_(list(event_ids)))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


async def expired_import_ids(
    session: AsyncSession, *, now: datetime, after_id: int, limit: int
) -> list[int]:
    stmt = (
        select(ListImport.id)
        .where(ListImport.id > after_id, ListImport.retain_until < now)
        .order_by(ListImport.id)
        .limit(limit)
    )
    if _is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.scalars(stmt)).all())


async def delete_imports(session: AsyncSession, import_ids: Sequence[int]) -> tuple[int, int]:
    """Delete imports and the addresses they brought; returns (imports, items)."""
    if not import_ids:
        return 0, 0
    ids = list(import_ids)
    items = await session.execute(
        delete(ImportItem)
        .where(ImportItem.import_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    imports = await session.execute(
        delete(ListImport)
        .where(ListImport.id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(imports), _rowcount(items)


async def expired_outbox_ids(
    session: AsyncSession, *, before: datetime, after_id: int, limit: int
) -> list[int]:
    stmt = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.id > after_id,
            OutboxMessage.status.in_(OUTBOX_FINAL),
            OutboxMessage.created_at < before,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if _is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.scalars(stmt)).all())


async def delete_outbox(session: AsyncSession, outbox_ids: Sequence[int]) -> int:
    if not outbox_ids:
        return 0
    result = await session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.id.in_(list(outbox_ids)))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)
