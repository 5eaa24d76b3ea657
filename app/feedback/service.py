"""Acting on what comes back (SG-4, SG-5, OO-1, OO-7, OO-8), one transaction per message and
recipient.

- A hard bounce suppresses the address everywhere and stops its pending deliveries (SG-4).
- A soft bounce is counted; ``soft_bounce_limit`` of them within ``soft_bounce_days`` days
  suppress the address as a hard bounce does.
- A complaint is a refusal (SG-5, Act Art. 3(3)): a withdrawal event in the consent ledger (method
  ``complaint``), a sender-wide suppression and the cancellation of queued deliveries, in one
  transaction: exactly what a one-click opt-out does.
- A mail to the unsubscribe address is a refusal too (OO-8): the same, with method
  ``email``. No mail answers it (OO-7).
- An auto-reply, a success or delay notice, or a message read as nothing changes nothing.

Every acted-on message is one ``FeedbackEvent``; the same report twice is one event (its
``dedupe_key``). Nothing with an address or a token goes to the log (DS-6).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses import AddressHasher
from app.campaigns.service import pause_for_complaints
from app.db import insert_for
from app.errors import InvalidToken
from app.feedback.reports import Report, Verdict, is_auto_reply, parse, read_report
from app.models import (
    Campaign,
    Delivery,
    FeedbackEvent,
    MailingList,
    OutboxMessage,
    Subscriber,
    Subscription,
)
from app.models.base import utcnow
from app.models.enums import (
    ConsentMethod,
    FeedbackKind,
    OptOutChannel,
    SuppressionReason,
)
from app.sending.bounces import record_hard_bounce
from app.subscriptions.service import record_optout
from app.tokens import FeedbackClaim, FeedbackTokens, UnsubscribeClaim, prefix_matches

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    SUPPRESSED_AFTER_SOFT = "suppressed_after_soft_bounces"
    COMPLAINT = "complaint"
    REFUSAL = "refusal"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"  # auto-reply, success or delay notice, unreadable
    UNKNOWN_TARGET = "unknown_target"  # a valid token whose delivery or person is gone
    UNVERIFIED = "unverified"  # not a token of ours


@dataclass(frozen=True, slots=True)
class SoftBouncePolicy:
    """SG-4: how many soft bounces within ``days`` suppress an address: ``limit``, or
    ``strict_limit`` for the addresses of ``strict_domains`` (Japanese carriers by default)."""

    limit: int = 3
    days: int = 15
    strict_domains: tuple[str, ...] = ()
    strict_limit: int = 2

    def limit_for(self, address: str) -> int:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        strict = any(domain == d or domain.endswith("." + d) for d in self.strict_domains)
        return min(self.limit, self.strict_limit) if strict else self.limit


@dataclass(frozen=True, slots=True)
class _Target:
    subscriber: Subscriber
    sender_id: int
    list_id: int
    campaign_id: int | None
    delivery_id: int | None
    outbox_id: int | None


def read_recipient(tokens: FeedbackTokens, address: str, domain: str) -> FeedbackClaim:
    """The claim of ``bounce+<token>@domain`` or ``unsubscribe+<token>@domain``; InvalidToken
    for any other address, or a token that does not verify."""
    local, at, host = address.rpartition("@")
    if not at or host.lower().rstrip(".") != domain.lower().rstrip("."):
        raise InvalidToken("not our domain")
    box, plus, token = local.partition("+")
    box = box.lower()
    if not plus or box not in ("bounce", "unsubscribe"):
        raise InvalidToken("not one of our addresses")
    claim = tokens.read(token)
    if (box == "unsubscribe") != (claim.kind == "u"):
        raise InvalidToken("a token of the other box")
    return claim


async def _target(session: AsyncSession, claim: FeedbackClaim) -> _Target | None:
    if claim.kind == "d":
        row = (
            await session.execute(
                select(Delivery, Subscriber, Campaign, MailingList.sender_id)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .join(Campaign, Campaign.id == Delivery.campaign_id)
                .join(MailingList, MailingList.id == Campaign.list_id)
                .where(Delivery.id == claim.ids[0])
            )
        ).first()
        if row is None:
            return None
        delivery, subscriber, campaign, sender_id = row
        return _Target(subscriber, sender_id, campaign.list_id, campaign.id, delivery.id, None)
    if claim.kind == "o":
        found = (
            await session.execute(
                select(OutboxMessage.id, Subscriber, Subscription.list_id, MailingList.sender_id)
                .join(Subscription, Subscription.id == OutboxMessage.subscription_id)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .join(MailingList, MailingList.id == Subscription.list_id)
                .where(OutboxMessage.id == claim.ids[0])
            )
        ).first()
        if found is None:
            return None
        outbox_id, subscriber, list_id, sender_id = found
        return _Target(subscriber, sender_id, list_id, None, None, outbox_id)
    subscriber_id, list_id = claim.ids
    person = (
        await session.execute(
            select(Subscriber, MailingList.sender_id)
            .join(MailingList, MailingList.id == list_id)
            .where(Subscriber.id == subscriber_id)
        )
    ).first()
    if person is None:
        return None
    subscriber, sender_id = person
    # OO-4: the token's address-hash prefix must be this person's (an id can be reused).
    unsubscribe = UnsubscribeClaim(subscriber_id, list_id, claim.address_hash_prefix or "")
    if not prefix_matches(unsubscribe, subscriber.address_hash):
        return None
    return _Target(subscriber, sender_id, list_id, None, None, None)


def _dedupe_key(kind: str, claim: FeedbackClaim, report: Report, data: bytes) -> str:
    """One event per report: the same Message-ID (or, without one, the same bytes) for the
    same token is the same report."""
    # A complaint or a refusal is one per delivery (or subscription), whatever its Message-ID:
    # a recipient cannot pause a campaign by complaining five times (SG-5).
    if kind in (FeedbackKind.COMPLAINT.value, FeedbackKind.REFUSAL.value):
        identity = "once"
    else:
        identity = report.message_id or hashlib.sha256(data).hexdigest()
    token = f"{claim.kind}:{'.'.join(map(str, claim.ids))}"
    return hashlib.sha256(f"{kind}\n{token}\n{identity}".encode()).hexdigest()


async def _record(
    session: AsyncSession,
    kind: FeedbackKind,
    target: _Target,
    claim: FeedbackClaim,
    report: Report,
    data: bytes,
    now: datetime,
) -> int | None:
    """Insert the event unless this report was recorded already; its id, or None."""
    insert = insert_for(session)
    result = await session.execute(
        insert(FeedbackEvent)
        .values(
            kind=kind.value,
            address_hash=target.subscriber.address_hash,
            delivery_id=target.delivery_id,
            outbox_id=target.outbox_id,
            campaign_id=target.campaign_id,
            status=report.status,
            reporter=report.reporter,
            dedupe_key=_dedupe_key(kind.value, claim, report, data),
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(FeedbackEvent.id)
    )
    event_id: int | None = result.scalar_one_or_none()
    return event_id


async def _suppress_everywhere(
    session: AsyncSession, target: _Target, reason: SuppressionReason
) -> None:
    """SG-4: never mail the address again, from any sender, and stop what is pending."""
    await record_hard_bounce(
        session,
        subscriber_id=target.subscriber.id,
        address_hash=target.subscriber.address_hash,
        reason=reason,
    )


async def _refusal(
    session: AsyncSession,
    hasher: AddressHasher,
    target: _Target,
    *,
    method: ConsentMethod,
    reason: SuppressionReason,
    note: str,
) -> int | None:
    """OO-1, OO-5: the same unit of work as a one-click opt-out, every list of the sender."""
    outcome = await record_optout(
        session,
        hasher,
        email=target.subscriber.email,
        sender_id=target.sender_id,
        list_id=None,
        method=method,
        reason=reason,
        recorded_by=f"feedback:{method.value}",
        channel=OptOutChannel.EMAIL.value,
        note=note,
    )
    return outcome.event_ids[0] if outcome.event_ids else None


async def handle(
    session: AsyncSession,
    hasher: AddressHasher,
    claim: FeedbackClaim,
    data: bytes,
    *,
    policy: SoftBouncePolicy,
    now: datetime | None = None,
) -> Outcome:
    """Act on one message that reached one of our addresses, in the caller's transaction."""
    now = now or utcnow()
    target = await _target(session, claim)
    if target is None:
        log.info("feedback for a %s that no longer exists", claim.kind)
        return Outcome.UNKNOWN_TARGET

    if claim.kind == "u":
        try:
            auto = is_auto_reply(parse(data))
        except RecursionError:  # nested past reason: not an auto-reply anyone sends
            auto = False
        if auto:
            return Outcome.IGNORED
        report = read_report(data)
        event_id = await _record(session, FeedbackKind.REFUSAL, target, claim, report, data, now)
        if event_id is None:
            return Outcome.DUPLICATE
        consent_event_id = await _refusal(
            session,
            hasher,
            target,
            method=ConsentMethod.EMAIL,
            reason=SuppressionReason.OPTOUT_REQUEST,
            note="mailed to the unsubscribe address",
        )
        await _link(session, event_id, consent_event_id)
        log.info("refusal by mail recorded sender=%s", target.sender_id)
        return Outcome.REFUSAL

    report = read_report(data)
    if report.verdict is Verdict.COMPLAINT:
        event_id = await _record(session, FeedbackKind.COMPLAINT, target, claim, report, data, now)
        if event_id is None:
            return Outcome.DUPLICATE
        consent_event_id = await _refusal(
            session,
            hasher,
            target,
            method=ConsentMethod.COMPLAINT,
            reason=SuppressionReason.COMPLAINT,
            note=f"spam complaint ({report.reporter or 'feedback loop'})"[:500],
        )
        await _link(session, event_id, consent_event_id)
        log.info("complaint recorded campaign=%s sender=%s", target.campaign_id, target.sender_id)
        if target.campaign_id is not None:
            await pause_for_complaints(session, target.campaign_id)
        return Outcome.COMPLAINT
    if report.verdict is Verdict.HARD_BOUNCE:
        if (
            await _record(session, FeedbackKind.HARD_BOUNCE, target, claim, report, data, now)
            is None
        ):
            return Outcome.DUPLICATE
        await _suppress_everywhere(session, target, SuppressionReason.HARD_BOUNCE)
        log.info("hard bounce status=%s campaign=%s", report.status, target.campaign_id)
        return Outcome.HARD_BOUNCE
    if report.verdict is Verdict.SOFT_BOUNCE:
        if (
            await _record(session, FeedbackKind.SOFT_BOUNCE, target, claim, report, data, now)
            is None
        ):
            return Outcome.DUPLICATE
        recent = await session.scalar(
            select(func.count())
            .select_from(FeedbackEvent)
            .where(
                FeedbackEvent.address_hash == target.subscriber.address_hash,
                FeedbackEvent.kind == FeedbackKind.SOFT_BOUNCE.value,
                FeedbackEvent.received_at > now - timedelta(days=policy.days),
            )
        )
        if int(recent or 0) >= policy.limit_for(target.subscriber.email):
            await _suppress_everywhere(session, target, SuppressionReason.SOFT_BOUNCES)
            log.info("address suppressed after %s soft bounces", recent)
            return Outcome.SUPPRESSED_AFTER_SOFT
        return Outcome.SOFT_BOUNCE
    return Outcome.IGNORED


async def _link(session: AsyncSession, event_id: int, consent_event_id: int | None) -> None:
    if consent_event_id is None:
        return
    row = await session.get(FeedbackEvent, event_id)
    if row is not None:
        row.consent_event_id = consent_event_id
