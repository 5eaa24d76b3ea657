"""Consent coming in and going out: signup, confirmation, recorded consent, opt-out.

Every change to a subscription's status appends a ConsentEvent in the same unit of work; the
caller's session commits it whole or not at all (CR-1).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses import AddressHasher, mask_address
from app.db import insert_for
from app.errors import Conflict, InvalidToken, NotFound
from app.ledger.chain import append_event
from app.models import (
    ConsentEvent,
    MailingList,
    OutboxMessage,
    Sender,
    Subscriber,
    Subscription,
)
from app.models.base import utcnow
from app.models.enums import (
    ConsentEventKind,
    ConsentMethod,
    LegalBasis,
    OutboxStatus,
    SubscriptionStatus,
    SuppressionReason,
    SuppressionScope,
)
from app.subscriptions import repository as repo
from app.tokens import UnsubscribeClaim, prefix_matches
from app.wordings import repository as wordings_repo

log = logging.getLogger(__name__)

SUBJECT = "subject"  # recorded_by: the person themself


class AddressSuppressed(Conflict):
    """OO-6: a suppression is lifted only by the person's own fresh, confirmed opt-in."""


@dataclass(frozen=True, slots=True)
class RequestOrigin:
    """Where a public request came from, recorded with the event (CR-1)."""

    ip: str | None = None
    user_agent: str | None = None
    source_url: str | None = None


def new_event(
    kind: ConsentEventKind, origin: RequestOrigin, now: datetime, **content: Any
) -> ConsentEvent:
    """CR-1: a ledger event as every path builds it: its kind, when it happened, and where the
    request came from (IP, user agent, and the source URL unless ``content`` names another).
    It enters the ledger through ``append_event`` (CR-3)."""
    content.setdefault("source_url", origin.source_url)
    return ConsentEvent(
        kind=kind, occurred_at=now, ip=origin.ip, user_agent=origin.user_agent, **content
    )


class SignupResult(StrEnum):
    PENDING = "pending"  # a confirmation mail is on its way
    ACTIVE = "active"  # single opt-in list: subscribed now
    UNCHANGED = "unchanged"  # already subscribed: nothing to do, nothing sent
    # A suppressed address was mailed a confirmation less than a day ago: nothing recorded, no
    # new mail (OO-7).
    HELD_BACK = "held_back"


# OO-7: however often a stranger types an address that opted out into signup forms, on however
# many lists, it gets at most one confirmation request a day.
SUPPRESSED_CONFIRMATION_INTERVAL = timedelta(days=1)
CONFIRMATION = "confirmation"  # the outbox kind of a double opt-in request


@dataclass(frozen=True, slots=True)
class SignupOutcome:
    result: SignupResult
    subscription_id: int | None
    outbox_id: int | None = None


async def _list_and_sender(session: AsyncSession, list_id: int) -> tuple[MailingList, Sender]:
    row = (
        await session.execute(
            select(MailingList, Sender)
            .join(Sender, Sender.id == MailingList.sender_id)
            .where(MailingList.id == list_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"There is no list {list_id}.")
    return row[0], row[1]


async def list_by_slug(session: AsyncSession, slug: str) -> tuple[MailingList, Sender]:
    row = (
        await session.execute(
            select(MailingList, Sender)
            .join(Sender, Sender.id == MailingList.sender_id)
            .where(MailingList.slug == slug)
        )
    ).first()
    if row is None:
        raise NotFound("There is no such list.")
    return row[0], row[1]


async def _ensure_subscription(
    session: AsyncSession, subscriber_id: int, list_id: int
) -> Subscription:
    """Get or create the subscription row, locked for this unit of work."""
    subscription = await repo.get_subscription(session, subscriber_id, list_id, for_update=True)
    if subscription is not None:
        return subscription
    now = utcnow()
    insert = insert_for(session)
    await session.execute(
        insert(Subscription)
        .values(
            subscriber_id=subscriber_id,
            list_id=list_id,
            status=SubscriptionStatus.PENDING.value,
            requires_confirmation=False,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["subscriber_id", "list_id"])
    )
    subscription = await repo.get_subscription(session, subscriber_id, list_id, for_update=True)
    assert subscription is not None
    return subscription


async def subscribe(
    session: AsyncSession,
    hasher: AddressHasher,
    *,
    mailing_list: MailingList,
    email: str,
    name: str | None,
    consent_text: str,
    method: ConsentMethod,
    origin: RequestOrigin,
    language: str | None = None,
) -> SignupOutcome:
    """A person asks for the list through a signup door (CC-1, CC-2, CC-3, CC-5, CR-1).

    The caller has already checked the consent box was ticked and the address is normalised.
    On a double opt-in list (the default) the subscription stays pending and a confirmation
    mail is written to the outbox in this same unit of work; it carries no advertising and goes
    only to the address that asked. A suppressed address always goes through confirmation, even
    on a single opt-in list: only the person's own confirmed opt-in may lift a suppression (OO-6).
    A suppressed address already sent a confirmation today gets none and nothing is recorded
    (OO-7). Every path writes one outbox row (dropped at once when there is nothing to send), so
    a known address costs the same work as an unknown one.

    ``language`` is the one the person signed up in (the page's, or their browser's), kept with
    the subscription for its confirmation mail, pages and campaigns; None keeps what is there
    (at first: the list's). Only a signup that records a grant sets it: a signup for an active
    subscription changes nothing, so nobody can change another person's language by typing
    their address into a form.
    """
    address_hash = hasher(email)
    subscriber, _ = await repo.get_or_create_subscriber(
        session, email=email, address_hash=address_hash, name=name
    )
    existing = await repo.get_subscription(session, subscriber.id, mailing_list.id, for_update=True)
    is_suppressed = await repo.is_suppressed(
        session, address_hash, mailing_list.sender_id, mailing_list.id
    )
    # An active subscription can be suppressed (a hard bounce suppresses everywhere and leaves
    # the subscriptions as they were): then the signup goes through confirmation, the only way
    # the person can lift it (OO-6).
    if existing is not None and existing.status == SubscriptionStatus.ACTIVE and not is_suppressed:
        # Same answer to the caller as any other signup; nothing new to record or send.
        await _nothing_to_send(session, existing.id, "already subscribed: nothing to confirm")
        return SignupOutcome(SignupResult.UNCHANGED, existing.id)

    needs_confirmation = mailing_list.double_opt_in or is_suppressed
    now = utcnow()
    if needs_confirmation and await _confirmed_recently_while_suppressed(
        session, subscriber.id, address_hash, now
    ):
        # Nothing recorded either: the request that was mailed stays the one to confirm.
        subscription_id = existing.id if existing is not None else None
        await _nothing_to_send(
            session, subscription_id, "suppressed address: at most one confirmation a day"
        )
        log.info("signup held back: suppressed address mailed today list=%s", mailing_list.id)
        return SignupOutcome(SignupResult.HELD_BACK, subscription_id)
    subscription = await _ensure_subscription(session, subscriber.id, mailing_list.id)
    text_hash = await wordings_repo.store_consent_text(session, consent_text)
    event = new_event(
        ConsentEventKind.GRANT,
        origin,
        now,
        email=email,
        subscriber_id=subscriber.id,
        sender_id=mailing_list.sender_id,
        list_id=mailing_list.id,
        basis=LegalBasis.OPT_IN,
        method=method,
        obtained_at=now,
        consent_text_hash=text_hash,
        purpose=mailing_list.purpose,
        evidence={},
        double_opt_in_requested_at=now if needs_confirmation else None,
        recorded_by=SUBJECT,
    )
    await append_event(session, event)
    subscription.basis = LegalBasis.OPT_IN
    subscription.grant_event_id = event.id
    subscription.confirm_event_id = None
    subscription.confirmed_at = None
    subscription.requires_confirmation = needs_confirmation
    if language is not None:
        subscription.language = language
    subscription.updated_at = now
    if not needs_confirmation:
        subscription.status = SubscriptionStatus.ACTIVE
        await session.flush()
        return SignupOutcome(SignupResult.ACTIVE, subscription.id)
    subscription.status = SubscriptionStatus.PENDING
    outbox = OutboxMessage(
        kind=CONFIRMATION, subscription_id=subscription.id, consent_event_id=event.id
    )
    session.add(outbox)
    await session.flush()
    log.info("signup pending confirmation list=%s subscriber=%s", mailing_list.id, subscriber.id)
    return SignupOutcome(SignupResult.PENDING, subscription.id, outbox.id)


async def _confirmed_recently_while_suppressed(
    session: AsyncSession, subscriber_id: int, address_hash: str, now: datetime
) -> bool:
    """OO-7: an address under any suppression (an opt-out anywhere, an erasure, a bounce, a
    complaint) gets at most one confirmation mail a day, counted over every list of the
    instance, among those queued since it became suppressed (the person who opted out this
    morning can still ask to come back). The count is the outbox itself, so it holds across
    restarts and processes; on PostgreSQL the subscriber row is locked first, so two signups at
    once cannot both pass."""
    suppressed_at = await repo.suppressed_since(session, address_hash)
    if suppressed_at is None:
        return False
    await repo.lock_subscriber(session, subscriber_id)
    since = max(now - SUPPRESSED_CONFIRMATION_INTERVAL, suppressed_at)
    return await repo.confirmations_mailed_since(session, subscriber_id, since) > 0


async def _nothing_to_send(session: AsyncSession, subscription_id: int | None, why: str) -> None:
    """A signup that calls for no mail still writes one outbox row, already dropped, so that it
    does the same kind of work as one that does: a write, committed, whether the address is
    known or not (no timing oracle). The row also tells the operator what happened and why."""
    session.add(
        OutboxMessage(
            kind=CONFIRMATION,
            subscription_id=subscription_id,
            consent_event_id=None,
            status=OutboxStatus.DROPPED,
            last_error=why,
        )
    )
    await session.flush()


class ConfirmResult(StrEnum):
    CONFIRMABLE = "confirmable"  # the link's request is outstanding: the button confirms it
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"


@dataclass(frozen=True, slots=True)
class ConfirmOutcome:
    result: ConfirmResult
    mailing_list: MailingList
    sender: Sender
    # The wording recorded with the request this link was mailed for: what the mail showed,
    # what the confirm page shows, and so what the person confirms (CR-1).
    consent_text: str | None = None
    # The subscription's language (None: the list's), for the page that answers.
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ConfirmationTarget:
    """What a confirm link would do now, decided once for the page (GET) and the button (POST)."""

    result: ConfirmResult  # CONFIRMABLE or ALREADY_CONFIRMED
    request: ConsentEvent  # the grant whose confirmation mail carried the link
    subscription: Subscription
    mailing_list: MailingList
    sender: Sender
    consent_text: str | None


LINK_NOT_USABLE = "This confirmation link has been replaced or withdrawn."


async def confirmation_target(
    session: AsyncSession, grant_event_id: int, *, for_update: bool = False
) -> ConfirmationTarget:
    """CC-3: the one decision on a confirm link, used by the page and by the button alike, so
    that a link that shows a confirm button confirms and one that cannot says so at once.

    - The subscription is confirmed already: the link says so (both ways), and changes nothing.
    - The subscription is pending and the link's request is still outstanding: confirmable. A
      person who signed up twice holds two mails; the link of either confirms, and the confirm
      event records which request (and so which wording) it was.
    - Anything else (the request was superseded by an opt-out, a confirmation, an operator's
      record, an erasure; it never asked for confirmation): InvalidToken, a plain 400 page.

    ``for_update`` locks the subscription row, as the POST does before it acts.
    """
    request = await session.get(ConsentEvent, grant_event_id)
    if (
        request is None
        or request.kind != ConsentEventKind.GRANT
        or request.subscriber_id is None
        or request.list_id is None
        or request.double_opt_in_requested_at is None
    ):
        raise InvalidToken("This confirmation link is not valid.")
    subscription = await repo.get_subscription(
        session, request.subscriber_id, request.list_id, for_update=for_update
    )
    if subscription is None:
        raise InvalidToken("This confirmation link is not valid.")
    if subscription.status == SubscriptionStatus.ACTIVE and subscription.confirmed_at:
        result = ConfirmResult.ALREADY_CONFIRMED
    elif subscription.status == SubscriptionStatus.PENDING and (
        subscription.grant_event_id == request.id or not await repo.request_closed(session, request)
    ):
        result = ConfirmResult.CONFIRMABLE
    else:
        finished = InvalidToken(LINK_NOT_USABLE)
        finished.list_id = request.list_id
        raise finished
    mailing_list, sender = await _list_and_sender(session, request.list_id)
    consent_text = await wordings_repo.consent_text(session, request.consent_text_hash)
    return ConfirmationTarget(result, request, subscription, mailing_list, sender, consent_text)


async def _wording_quoted_in_mail(session: AsyncSession, request: ConsentEvent) -> bool:
    """CR-1: whether the confirmation mail quoted the request's wording (the outbox's rule)."""
    if request.consent_text_hash is None or request.list_id is None:
        return False
    if request.method == ConsentMethod.WEB_FORM:
        return True
    registered = await wordings_repo.by_hash(session, request.list_id, request.consent_text_hash)
    return registered is not None


@dataclass(frozen=True, slots=True)
class LinkContext:
    """The list, sender and person's language of a confirm link that cannot confirm."""

    mailing_list: MailingList
    sender: Sender
    language: str | None  # the subscription's; None: the list's


async def refused_link_context(
    session: AsyncSession, grant_event_id: int | None
) -> LinkContext | None:
    """Whose a refused confirm link was (expired, or its request over), when its request
    still exists: the page then names the sender and the form, in the person's language."""
    if grant_event_id is None:
        return None
    request = await session.get(ConsentEvent, grant_event_id)
    if request is None or request.list_id is None:
        return None
    if await session.get(MailingList, request.list_id) is None:
        return None
    mailing_list, sender = await _list_and_sender(session, request.list_id)
    language = (
        await repo.subscription_language(session, request.subscriber_id, request.list_id)
        if request.subscriber_id is not None
        else None
    )
    return LinkContext(mailing_list, sender, language)


async def confirm(
    session: AsyncSession,
    hasher: AddressHasher,
    *,
    grant_event_id: int,
    origin: RequestOrigin,
) -> ConfirmOutcome:
    """The person confirms by the link mailed to them (CC-3): append a confirm event, make the
    subscription active, and, being the person's own confirmed opt-in, set aside for this list
    only every suppression covering it (OO-6: not for the sender's other lists, nor for others).

    What is confirmed is the request the link was mailed for, with the wording recorded for it:
    the confirmation mail showed that wording and the confirm page shows it above the button
    (CR-1, CC-2, CC-5). The confirm event references that request and its wording's hash, and
    the subscription rests on that request from now on.
    """
    target = await confirmation_target(session, grant_event_id, for_update=True)
    event, subscription = target.request, target.subscription
    mailing_list, sender = target.mailing_list, target.sender
    if target.result is ConfirmResult.ALREADY_CONFIRMED:
        return ConfirmOutcome(
            ConfirmResult.ALREADY_CONFIRMED,
            mailing_list,
            sender,
            target.consent_text,
            subscription.language,
        )
    now = utcnow()
    confirm_event = new_event(
        ConsentEventKind.CONFIRM,
        origin,
        now,
        email=event.email,
        subscriber_id=event.subscriber_id,
        sender_id=event.sender_id,
        list_id=event.list_id,
        basis=event.basis,
        method=event.method,
        obtained_at=event.obtained_at,
        source_url=event.source_url,
        consent_text_hash=event.consent_text_hash,
        purpose=event.purpose,
        evidence={
            "grant_event_id": event.id,
            # The confirm page shows the wording recorded with the request above the button.
            "wording_shown_at_confirmation": event.consent_text_hash is not None,
            # The mail that carried the link quoted it too, when it was the operator's own
            # (the hosted form's, or registered for the list): see app/sending/outbox.py.
            "wording_quoted_in_mail": await _wording_quoted_in_mail(session, event),
        },
        double_opt_in_requested_at=event.double_opt_in_requested_at,
        confirmed_at=now,
        recorded_by=SUBJECT,
    )
    await append_event(session, confirm_event)
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.grant_event_id = event.id
    subscription.confirm_event_id = confirm_event.id
    subscription.confirmed_at = now
    subscription.updated_at = now
    await repo.lift_suppressions(
        session,
        address_hash=hasher(event.email),
        sender_id=mailing_list.sender_id,
        list_id=mailing_list.id,
        confirm_event_id=confirm_event.id,
    )
    await session.flush()
    return ConfirmOutcome(
        ConfirmResult.CONFIRMED, mailing_list, sender, target.consent_text, subscription.language
    )


@dataclass(frozen=True, slots=True)
class RecordedConsent:
    event: ConsentEvent
    subscription: Subscription


async def record_consent(
    session: AsyncSession,
    hasher: AddressHasher,
    *,
    list_id: int,
    email: str,
    basis: LegalBasis,
    method: ConsentMethod,
    obtained_at: datetime,
    evidence: dict[str, Any],
    consent_text: str | None,
    origin: RequestOrigin,
    recorded_by: str,
    language: str | None = None,
) -> RecordedConsent:
    """An operator records consent obtained elsewhere, with its evidence (CC-1, CC-4, CR-1).

    The evidence has been checked against the basis by the schema. An address under suppression
    is refused: the admin API never lifts one (OO-6). ``language`` (the person's, for their mail
    and pages) is set when given and kept as it was otherwise.
    """
    mailing_list, _sender = await _list_and_sender(session, list_id)
    address_hash = hasher(email)
    if await repo.is_suppressed(session, address_hash, mailing_list.sender_id, mailing_list.id):
        raise AddressSuppressed(
            "This address has opted out or is suppressed; only the person's own confirmed "
            "opt-in can lift that, so no consent was recorded."
        )
    subscriber, _ = await repo.get_or_create_subscriber(
        session, email=email, address_hash=address_hash
    )
    subscription = await _ensure_subscription(session, subscriber.id, mailing_list.id)
    text_hash = (
        await wordings_repo.store_consent_text(session, consent_text) if consent_text else None
    )
    now = utcnow()
    event = new_event(
        ConsentEventKind.GRANT,
        origin,
        now,
        email=email,
        subscriber_id=subscriber.id,
        sender_id=mailing_list.sender_id,
        list_id=mailing_list.id,
        basis=basis,
        method=method,
        obtained_at=obtained_at,
        consent_text_hash=text_hash,
        purpose=mailing_list.purpose,
        evidence=evidence,
        recorded_by=recorded_by,
    )
    await append_event(session, event)
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.basis = basis
    subscription.grant_event_id = event.id
    # The subscription now rests on this grant, which needs no confirmation. A confirmation of
    # an earlier grant (perhaps since withdrawn) must not stay the evidence a delivery cites.
    subscription.requires_confirmation = False
    subscription.confirm_event_id = None
    subscription.confirmed_at = None
    if language is not None:
        subscription.language = language
    subscription.updated_at = now
    await session.flush()
    return RecordedConsent(event, subscription)


@dataclass(frozen=True, slots=True)
class OptOutOutcome:
    """What an opt-out did. ``changed`` is False for a harmless repeat."""

    changed: bool
    event_ids: list[int] = field(default_factory=list)
    unsubscribed_list_ids: list[int] = field(default_factory=list)
    cancelled_deliveries: int = 0


async def record_optout(
    session: AsyncSession,
    hasher: AddressHasher,
    *,
    email: str,
    sender_id: int,
    list_id: int | None,
    method: ConsentMethod,
    reason: SuppressionReason,
    recorded_by: str,
    origin: RequestOrigin | None = None,
    channel: str | None = None,
    note: str | None = None,
) -> OptOutOutcome:
    """One opt-out, one unit of work (SG-2, OO-1, OO-5): append the withdrawal event, set the
    subscriptions in scope to unsubscribed, upsert the suppression, and cancel the address's
    queued deliveries. The caller answers only after this commits; from then on the send gate
    refuses the address, at claim time and again just before each SMTP transaction.

    ``list_id`` None means every list of the sender (the default scope, OO-5). A repeat changes
    nothing and appends nothing (OO-3).
    """
    origin = origin or RequestOrigin()
    address_hash = hasher(email)
    scope = SuppressionScope.LIST if list_id is not None else SuppressionScope.SENDER
    scope_ref = list_id if list_id is not None else sender_id
    subscriber = await repo.subscriber_by_email(session, email)

    in_scope: Sequence[Subscription] = []
    if subscriber is not None:
        if list_id is not None:
            one = await repo.get_subscription(session, subscriber.id, list_id, for_update=True)
            in_scope = [one] if one is not None else []
        else:
            in_scope = await repo.subscriptions_of_sender(session, subscriber.id, sender_id)
    to_unsubscribe = [s for s in in_scope if s.status != SubscriptionStatus.UNSUBSCRIBED]
    # A suppression that a confirmation set aside for some list is not "already" there: this
    # new refusal arms it again (OO-6).
    already = await repo.suppression_in_force(session, address_hash, scope, scope_ref)
    if already and not to_unsubscribe:
        return OptOutOutcome(changed=False)

    now = utcnow()
    event = new_event(
        ConsentEventKind.WITHDRAW,
        origin,
        now,
        email=email,
        subscriber_id=subscriber.id if subscriber else None,
        sender_id=sender_id,
        list_id=list_id,
        basis=None,
        method=method,
        evidence={},
        recorded_by=recorded_by,
        scope=scope,
        channel=channel,
        note=note,
    )
    await append_event(session, event)
    for subscription in to_unsubscribe:
        subscription.status = SubscriptionStatus.UNSUBSCRIBED
        subscription.updated_at = now
    await repo.upsert_suppression(
        session,
        address_hash=address_hash,
        scope=scope,
        scope_ref=scope_ref,
        reason=reason,
        consent_event_id=event.id,
    )
    cancelled = 0
    if subscriber is not None:
        cancelled = await repo.stop_pending_deliveries(
            session, subscriber.id, sender_id=sender_id, list_id=list_id
        )
    await session.flush()
    log.info(
        "opt-out recorded address=%s sender=%s list=%s cancelled=%s",
        mask_address(email),
        sender_id,
        list_id,
        cancelled,
    )
    return OptOutOutcome(
        changed=True,
        event_ids=[event.id],
        unsubscribed_list_ids=[s.list_id for s in to_unsubscribe],
        cancelled_deliveries=cancelled,
    )


class UnsubscribeScope(StrEnum):
    SENDER = "sender"  # every list of the sender: the default (OO-5)
    LIST = "list"


@dataclass(frozen=True, slots=True)
class UnsubscribeTarget:
    """What an unsubscribe link points at; subscriber is None once the person was erased."""

    mailing_list: MailingList
    sender: Sender
    subscriber: Subscriber | None
    # The address is already suppressed for this list (or was erased): the page says so.
    withdrawn: bool = False
    # The person's language on this list (None: the list's), for the page.
    language: str | None = None


async def unsubscribe_target(
    session: AsyncSession, hasher: AddressHasher, claim: UnsubscribeClaim
) -> UnsubscribeTarget:
    mailing_list = await session.get(MailingList, claim.list_id)
    if mailing_list is None:
        raise InvalidToken("This unsubscribe link is not valid.")
    sender = await session.get(Sender, mailing_list.sender_id)
    assert sender is not None
    subscriber = await session.get(Subscriber, claim.subscriber_id)
    if subscriber is not None and not prefix_matches(claim, subscriber.address_hash):
        # The id was re-used after an erasure: this link belongs to somebody else, who is
        # already suppressed for good.
        subscriber = None
    withdrawn = subscriber is None or await repo.is_suppressed(
        session, hasher(subscriber.email), mailing_list.sender_id, mailing_list.id
    )
    language = (
        await repo.subscription_language(session, subscriber.id, mailing_list.id)
        if subscriber is not None
        else None
    )
    return UnsubscribeTarget(mailing_list, sender, subscriber, withdrawn, language)


async def unsubscribe_by_token(
    session: AsyncSession,
    hasher: AddressHasher,
    *,
    claim: UnsubscribeClaim,
    scope: UnsubscribeScope,
    method: ConsentMethod,
    origin: RequestOrigin,
) -> tuple[UnsubscribeTarget, OptOutOutcome]:
    """The recipient's own opt-out, by the body link or the RFC 8058 one-click POST (OO-1..5).

    An erased person is already suppressed everywhere: the link still answers that they are
    unsubscribed, and changes nothing.
    """
    target = await unsubscribe_target(session, hasher, claim)
    if target.subscriber is None:
        return target, OptOutOutcome(changed=False)
    outcome = await record_optout(
        session,
        hasher,
        email=target.subscriber.email,
        sender_id=target.mailing_list.sender_id,
        list_id=target.mailing_list.id if scope is UnsubscribeScope.LIST else None,
        method=method,
        reason=SuppressionReason.UNSUBSCRIBE,
        recorded_by=SUBJECT,
        origin=origin,
    )
    return target, outcome
