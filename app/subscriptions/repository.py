"""Queries of the consent domain, and the consent gate: the one definition of who may be mailed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.auth.scope import SenderIds, of_senders, person_visible
from app.db import insert_for
from app.models import (
    Campaign,
    ConsentEvent,
    Delivery,
    MailingList,
    OutboxMessage,
    Subscriber,
    Subscription,
    Suppression,
    SuppressionLift,
)
from app.models.base import utcnow
from app.models.enums import (
    DELIVERY_NOT_STARTED,
    ConsentEventKind,
    DeliveryStatus,
    OutboxStatus,
    SubscriptionStatus,
    SuppressionScope,
)

# The people subscriptions belong to: one row per normalised address.


async def subscriber_by_email(session: AsyncSession, email: str) -> Subscriber | None:
    return (await session.scalars(select(Subscriber).where(Subscriber.email == email))).first()


async def get_or_create_subscriber(
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
    existing = await subscriber_by_email(session, email)
    if existing is not None:
        return existing, False
    now = utcnow()
    insert = insert_for(session)
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
    subscriber = await subscriber_by_email(session, email)
    assert subscriber is not None
    return subscriber, created


async def visible_subscriber(
    session: AsyncSession, senders: SenderIds, subscriber_id: int
) -> Subscriber | None:
    """The person if one of the key's senders holds them (app.auth.scope), else None (DS-6)."""
    if senders is None:
        return await session.get(Subscriber, subscriber_id)
    stmt = select(Subscriber).where(
        Subscriber.id == subscriber_id, person_visible(Subscriber.id, senders)
    )
    return (await session.scalars(stmt)).first()


class GateVerdict(StrEnum):
    MAILABLE = "mailable"
    NO_CONSENT = "no_consent"
    SUPPRESSED = "suppressed"


def consent_valid(
    subscription: type[Subscription] | Any = Subscription,
) -> ColumnElement[bool]:
    """SG-1, CC-1, CC-3: an active subscription resting on a recorded grant with a legal basis,
    confirmed where its list asked for confirmation (double opt-in)."""
    return and_(
        subscription.status == SubscriptionStatus.ACTIVE,
        subscription.grant_event_id.is_not(None),
        subscription.basis.is_not(None),
        or_(
            subscription.requires_confirmation.is_(False),
            subscription.confirmed_at.is_not(None),
        ),
    )


def suppressed(
    address_hash: InstrumentedAttribute[str] | ColumnElement[str] | Any,
    sender_id: InstrumentedAttribute[int] | ColumnElement[int] | Any,
    list_id: InstrumentedAttribute[int] | ColumnElement[int] | Any,
) -> ColumnElement[bool]:
    """SG-2, OO-5, DS-3, SG-4, OO-6: a suppression of the address for everything, for the
    list's sender, or for the list itself, that the person has not set aside for this very list
    by their own confirmed opt-in on it (a lift). A lift for one list leaves the suppression
    blocking every other list and sender.

    Cost on the claim path: the outer lookup is the (address_hash, scope, scope_ref) unique
    index, as before; the lift is looked up, by its (suppression_id, list_id) unique index,
    only for a suppression that covers the row, which is rare."""
    return exists(
        select(literal(1)).where(
            _covering(address_hash, sender_id, list_id),
            ~exists(
                select(literal(1))
                .where(
                    SuppressionLift.suppression_id == Suppression.id,
                    SuppressionLift.list_id == list_id,
                )
                # The list comes from the outermost query, two levels up: without this,
                # SQLAlchemy would add the lists table to this FROM and match any lift.
                .correlate_except(SuppressionLift)
            ),
        )
    )


def _covering(address_hash: Any, sender_id: Any, list_id: Any) -> ColumnElement[bool]:
    """The suppressions that cover mail from this sender on this list to this address: for
    everything, for the sender, or for the list. The one definition both the gate and the
    lifting of suppressions use."""
    return and_(
        Suppression.address_hash == address_hash,
        or_(
            Suppression.scope == SuppressionScope.GLOBAL,
            and_(Suppression.scope == SuppressionScope.SENDER, Suppression.scope_ref == sender_id),
            and_(Suppression.scope == SuppressionScope.LIST, Suppression.scope_ref == list_id),
        ),
    )


def gate_verdict(
    subscription: type[Subscription] | Any = Subscription,
    subscriber: type[Subscriber] | Any = Subscriber,
    mailing_list: type[MailingList] | Any = MailingList,
) -> ColumnElement[str]:
    """The consent gate as one SQL expression, for rows joining a subscription to its subscriber
    and list (SG-1, SG-2). Used when a campaign's deliveries are created and again, in the same
    statement that claims them, when a worker is about to send."""
    return case(
        (
            suppressed(subscriber.address_hash, mailing_list.sender_id, mailing_list.id),
            literal(GateVerdict.SUPPRESSED.value),
        ),
        (consent_valid(subscription), literal(GateVerdict.MAILABLE.value)),
        else_=literal(GateVerdict.NO_CONSENT.value),
    )


def relied_on_event(subscription: type[Subscription] | Any = Subscription) -> ColumnElement[int]:
    """SG-1, CR-3: the consent event a delivery relies on: the confirmation when there is one
    (double opt-in), else the grant itself. Recorded with every delivery."""
    return func.coalesce(subscription.confirm_event_id, subscription.grant_event_id)


@dataclass(frozen=True, slots=True)
class GateDecision:
    verdict: GateVerdict
    consent_event_id: int | None

    @property
    def mailable(self) -> bool:
        return self.verdict is GateVerdict.MAILABLE


async def check_gate(session: AsyncSession, subscriber_id: int, list_id: int) -> GateDecision:
    """May this subscriber be mailed for this list now? (SG-1) The same expression as above."""
    row = (
        await session.execute(
            select(
                gate_verdict(),
                relied_on_event(),
            )
            .select_from(Subscription)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscription.subscriber_id == subscriber_id, Subscription.list_id == list_id)
        )
    ).first()
    if row is None:
        return GateDecision(GateVerdict.NO_CONSENT, None)
    verdict = GateVerdict(row[0])
    return GateDecision(verdict, row[1] if verdict is GateVerdict.MAILABLE else None)


async def is_suppressed(
    session: AsyncSession, address_hash: str, sender_id: int, list_id: int
) -> bool:
    return bool(await session.scalar(select(suppressed(address_hash, sender_id, list_id))))


async def find_suppressions(session: AsyncSession, address_hash: str) -> Sequence[Suppression]:
    result = await session.scalars(
        select(Suppression).where(Suppression.address_hash == address_hash).order_by(Suppression.id)
    )
    return result.all()


async def upsert_suppression(
    session: AsyncSession,
    *,
    address_hash: str,
    scope: SuppressionScope,
    scope_ref: int,
    reason: str,
    consent_event_id: int | None,
) -> None:
    """Insert a suppression unless the same one exists: idempotent under concurrent opt-outs.

    OO-6, SG-2, SG-4, DS-3: every call is a new refusal (an opt-out, a hard bounce, an erasure),
    so a suppression that already existed is armed again: the lifts the person's earlier
    confirmations set on it are deleted, and it blocks every list it covers until the person
    confirms again. The suppression row is locked first, so a confirmation running at the same
    moment either lifts before this (and its lift is deleted here) or after (and lifts the
    re-armed row): never a lift that outlives a later refusal unseen."""
    values = {
        "address_hash": address_hash,
        "scope": scope.value,
        "scope_ref": scope_ref,
        "reason": reason,
        "consent_event_id": consent_event_id,
    }
    insert = insert_for(session)
    await session.execute(
        insert(Suppression)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["address_hash", "scope", "scope_ref"])
    )
    suppression_id = await session.scalar(
        select(Suppression.id)
        .where(
            Suppression.address_hash == address_hash,
            Suppression.scope == scope,
            Suppression.scope_ref == scope_ref,
        )
        .with_for_update()
    )
    await session.execute(
        delete(SuppressionLift)
        .where(SuppressionLift.suppression_id == suppression_id)
        .execution_options(synchronize_session=False)
    )


async def suppression_in_force(
    session: AsyncSession, address_hash: str, scope: SuppressionScope, scope_ref: int
) -> bool:
    """This exact suppression exists and no confirmation has set it aside for any list: a
    repeated opt-out of the same scope would change nothing (OO-3). One with a lift is not:
    the repeat arms it again (OO-6)."""
    found = await session.scalar(
        select(Suppression.id).where(
            Suppression.address_hash == address_hash,
            Suppression.scope == scope,
            Suppression.scope_ref == scope_ref,
            ~exists(select(literal(1)).where(SuppressionLift.suppression_id == Suppression.id)),
        )
    )
    return found is not None


async def lift_suppressions(
    session: AsyncSession,
    *,
    address_hash: str,
    sender_id: int,
    list_id: int,
    confirm_event_id: int,
) -> int:
    """OO-6: the person's own fresh, confirmed opt-in to this list sets aside, for this list
    only, every suppression covering it (of the list, of its sender, of everything). Nothing is
    deleted: the suppressions keep blocking every other list and sender, where the person has
    not come back. Only ``service.confirm`` calls this, on the confirmation of a signup the
    person made through a signup door (CC-3); an operator's or an import's consent never does.

    The suppressions are locked first (see ``upsert_suppression``). Returns how many this
    confirmation set aside."""
    covering = (
        select(Suppression.id)
        .where(_covering(address_hash, sender_id, list_id))
        .order_by(Suppression.id)  # one lock order for every path: no deadlock between two
        .with_for_update()
    )
    ids = list((await session.scalars(covering)).all())
    if not ids:
        return 0
    insert = insert_for(session)
    now = utcnow()
    result = await session.execute(
        insert(SuppressionLift)
        .values(
            [
                {
                    "suppression_id": suppression_id,
                    "list_id": list_id,
                    "confirm_event_id": confirm_event_id,
                    "created_at": now,
                }
                for suppression_id in ids
            ]
        )
        .on_conflict_do_nothing(index_elements=["suppression_id", "list_id"])
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def lifts_of(
    session: AsyncSession, suppression_ids: Sequence[int]
) -> Sequence[SuppressionLift]:
    """The lifts of these suppressions, by suppression and list (OO-6)."""
    if not suppression_ids:
        return []
    result = await session.scalars(
        select(SuppressionLift)
        .where(SuppressionLift.suppression_id.in_(list(suppression_ids)))
        .order_by(SuppressionLift.suppression_id, SuppressionLift.list_id)
    )
    return result.all()


async def request_closed(session: AsyncSession, request: ConsentEvent) -> bool:
    """CC-3: has something happened since this confirmation request that ends it?

    A later request for the same list does not: the person may hold both mails, and either
    link confirms. What ends a request is the person's (or an operator's) withdrawal covering
    the list, a confirmation on the list, or a grant that needed no confirmation (an operator's
    record): after any of these, the subscription's pending state, if any, is a new one that
    this older link was never mailed for.
    """
    closing = select(ConsentEvent.id).where(
        ConsentEvent.subscriber_id == request.subscriber_id,
        ConsentEvent.id > request.id,
        or_(
            and_(
                ConsentEvent.kind == ConsentEventKind.WITHDRAW,
                or_(
                    ConsentEvent.list_id == request.list_id,
                    and_(
                        ConsentEvent.list_id.is_(None),
                        ConsentEvent.sender_id == request.sender_id,
                    ),
                ),
            ),
            and_(
                ConsentEvent.list_id == request.list_id,
                or_(
                    ConsentEvent.kind == ConsentEventKind.CONFIRM,
                    and_(
                        ConsentEvent.kind == ConsentEventKind.GRANT,
                        ConsentEvent.double_opt_in_requested_at.is_(None),
                    ),
                ),
            ),
        ),
    )
    return (await session.scalar(closing.limit(1))) is not None


async def get_subscription(
    session: AsyncSession, subscriber_id: int, list_id: int, *, for_update: bool = False
) -> Subscription | None:
    stmt = select(Subscription).where(
        Subscription.subscriber_id == subscriber_id, Subscription.list_id == list_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def subscription_language(
    session: AsyncSession, subscriber_id: int, list_id: int
) -> str | None:
    """The language a person's subscription keeps (None: the list's, or no subscription).

    The column alone, not the row: an opt-out that follows in the same unit of work locks the
    row and must read it fresh."""
    language: str | None = await session.scalar(
        select(Subscription.language).where(
            Subscription.subscriber_id == subscriber_id, Subscription.list_id == list_id
        )
    )
    return language


async def subscriptions_of_sender(
    session: AsyncSession, subscriber_id: int, sender_id: int
) -> Sequence[Subscription]:
    result = await session.scalars(
        select(Subscription)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(Subscription.subscriber_id == subscriber_id, MailingList.sender_id == sender_id)
        .order_by(Subscription.id)
        .with_for_update(of=Subscription)
    )
    return result.all()


def events_concerning_list(list_id: int) -> ColumnElement[bool]:
    """The ledger events that belong to a list's record: its own, and the sender-wide
    withdrawals (list_id NULL, OO-5) of its sender, which concern every list of that sender."""
    sender_of_list = (
        select(MailingList.sender_id).where(MailingList.id == list_id).scalar_subquery()
    )
    return or_(
        ConsentEvent.list_id == list_id,
        and_(ConsentEvent.list_id.is_(None), ConsentEvent.sender_id == sender_of_list),
    )


async def latest_events(
    session: AsyncSession,
    *,
    list_id: int | None = None,
    email: str | None = None,
    since: Any = None,
    before_id: int | None = None,
    limit: int = 100,
    senders: SenderIds = None,
) -> Sequence[ConsentEvent]:
    """Consent and opt-out events, newest first, keyset-paginated by id; the key's senders'
    only (DS-6)."""
    stmt = select(ConsentEvent).where(of_senders(ConsentEvent.sender_id, senders))
    if list_id is not None:
        stmt = stmt.where(events_concerning_list(list_id))
    if email is not None:
        stmt = stmt.where(ConsentEvent.email == email)
    if since is not None:
        stmt = stmt.where(ConsentEvent.occurred_at >= since)
    if before_id is not None:
        stmt = stmt.where(ConsentEvent.id < before_id)
    result = await session.scalars(stmt.order_by(ConsentEvent.id.desc()).limit(limit))
    return result.all()


# --- confirmation requests to suppressed addresses (OO-7) ---------------------------------------

# An outbox row that carried, or will carry, a confirmation mail to its subscriber.
MAILED_STATUSES = (OutboxStatus.PENDING, OutboxStatus.SENT)


async def suppressed_since(session: AsyncSession, address_hash: str) -> datetime | None:
    """When the address's newest suppression began (an opt-out of anything, an erasure, a
    bounce, a complaint), or None when nothing suppresses it."""
    newest: datetime | None = await session.scalar(
        select(func.max(Suppression.created_at)).where(Suppression.address_hash == address_hash)
    )
    return newest


async def lock_subscriber(session: AsyncSession, subscriber_id: int) -> None:
    """Serialise the signups of one address on PostgreSQL (SQLite's BEGIN IMMEDIATE already
    serialises every writer), so that two at once cannot both find no recent mail."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(Subscriber.id).where(Subscriber.id == subscriber_id).with_for_update()
        )


async def confirmations_mailed_since(
    session: AsyncSession, subscriber_id: int, since: datetime
) -> int:
    """Confirmation mails queued or sent to the person since ``since``, on every list of the
    instance. One subscriber per address, so this counts by the address (its hash)."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .join(Subscription, Subscription.id == OutboxMessage.subscription_id)
            .where(
                Subscription.subscriber_id == subscriber_id,
                OutboxMessage.consent_event_id.is_not(None),
                OutboxMessage.status.in_(MAILED_STATUSES),
                OutboxMessage.created_at >= since,
            )
        )
        or 0
    )


async def stop_pending_deliveries(
    session: AsyncSession,
    subscriber_id: int,
    *,
    sender_id: int | None,
    list_id: int | None = None,
    status: DeliveryStatus = DeliveryStatus.CANCELLED,
) -> int:
    """SG-2, SG-4: end the person's deliveries that no SMTP transaction has started for, in the
    caller's transaction; returns how many. An opt-out stops those of its scope (the sender's
    lists, or one list) as ``cancelled``; a hard bounce stops all of them (``sender_id`` None,
    said explicitly: no caller gets every sender's by forgetting it) as ``skipped_suppressed``.

    On PostgreSQL this UPDATE waits for a worker that holds a row locked while it opens the SMTP
    transaction, so the opt-out commits (and is answered) only after any such transaction
    started; on SQLite the write lock does the same.
    """
    stmt = update(Delivery).where(
        Delivery.subscriber_id == subscriber_id, Delivery.status.in_(DELIVERY_NOT_STARTED)
    )
    if sender_id is not None or list_id is not None:
        campaigns = select(Campaign.id).join(MailingList, MailingList.id == Campaign.list_id)
        if sender_id is not None:
            campaigns = campaigns.where(MailingList.sender_id == sender_id)
        if list_id is not None:
            campaigns = campaigns.where(Campaign.list_id == list_id)
        stmt = stmt.where(Delivery.campaign_id.in_(campaigns))
    result = await session.execute(
        stmt.values(status=status, updated_at=utcnow(), lease_expires_at=None).execution_options(
            synchronize_session=False
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
