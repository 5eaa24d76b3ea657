"""The outbox sender: system mails written by a request's transaction, sent afterwards.

Rows are claimed with a short lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sent outside any
transaction, then marked sent, or retried with exponential backoff on failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from app.addresses import mask_address, redact_addresses
from app.background import run_forever
from app.mail.identity import ListIdentity, SenderIdentity
from app.mail.system_mail import SystemMail
from app.mail.transport import SendFailure, Transport, retry_delay
from app.models import (
    ConsentEvent,
    ConsentText,
    MailingList,
    OutboxMessage,
    RegisteredWording,
    Sender,
    Subscriber,
    Subscription,
)
from app.models.base import utcnow
from app.models.enums import ConsentMethod, OutboxStatus, SubscriptionStatus
from app.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
CLAIM_LEASE = timedelta(minutes=5)


@dataclass
class OutboxRun:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    retrying: int = 0


async def send_due(
    runtime: Runtime, transport: Transport, system_mail: SystemMail, *, limit: int = 50
) -> OutboxRun:
    """Send what is due now; return the counts.

    Three transactions per batch whatever its size: claim (under a lease, SKIP LOCKED on
    PostgreSQL), read what the mails need, record the outcomes. Sending happens outside them.
    """
    run = OutboxRun()
    now = utcnow()
    async with runtime.sessionmaker() as session, session.begin():
        stmt = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        if not runtime.settings.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list((await session.scalars(stmt)).all())
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = now + CLAIM_LEASE  # lease: another sender leaves it alone
    if not rows:
        return run
    async with runtime.sessionmaker() as session:
        found = {
            r[0].id: r
            for r in (
                await session.execute(
                    select(Subscription, Subscriber, MailingList, Sender)
                    .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                    .join(MailingList, MailingList.id == Subscription.list_id)
                    .join(Sender, Sender.id == MailingList.sender_id)
                    .where(Subscription.id.in_([row.subscription_id for row in rows]))
                )
            ).all()
        }
        # CR-1: each mail quotes the wording recorded with its own request, when that wording
        # is the operator's own: the hosted form's, or one registered for the list. A wording
        # an anonymous caller made up is not mailed to the address it names (CC-3: the mail
        # carries nothing but the request; no relay for a stranger's text), only shown on the
        # confirm page, which the address's owner opens.
        registered = (
            select(RegisteredWording.id)
            .where(
                RegisteredWording.list_id == ConsentEvent.list_id,
                RegisteredWording.consent_text_hash == ConsentEvent.consent_text_hash,
            )
            .exists()
        )
        wordings: dict[int, str | None] = {
            event_id: text if method == ConsentMethod.WEB_FORM or is_registered else None
            for event_id, text, method, is_registered in (
                await session.execute(
                    select(ConsentEvent.id, ConsentText.text, ConsentEvent.method, registered)
                    .join(ConsentText, ConsentText.hash == ConsentEvent.consent_text_hash)
                    .where(
                        ConsentEvent.id.in_(
                            [row.consent_event_id for row in rows if row.consent_event_id]
                        )
                    )
                )
            ).all()
        }
        # No rollback(): it would expire the rows just read. Closing ends the read transaction.
    outcomes: list[tuple[int, OutboxStatus, str | None, int]] = []
    for row in rows:
        try:
            outcomes.append(
                await _send_one(runtime, transport, system_mail, row, found, wordings, run)
            )
        except Exception as exc:
            # One mail that cannot even be built must not leave the batch unrecorded (the
            # others would go out again at the next lease): it fails alone, and is logged.
            log.exception("confirmation mail %s could not be prepared", row.id)
            run.failed += 1
            outcomes.append((row.id, OutboxStatus.FAILED, type(exc).__name__, row.attempts))
    async with runtime.sessionmaker() as session, session.begin():
        for outbox_id, status, error, attempts in outcomes:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == outbox_id)
                .values(
                    status=status,
                    last_error=error,
                    sent_at=utcnow() if status is OutboxStatus.SENT else None,
                    next_attempt_at=(
                        utcnow() + retry_delay(attempts)
                        if status is OutboxStatus.PENDING
                        else OutboxMessage.next_attempt_at
                    ),
                )
            )
    return run


async def _send_one(
    runtime: Runtime,
    transport: Transport,
    system_mail: SystemMail,
    row: OutboxMessage,
    found: dict[int, Any],
    wordings: dict[int, str | None],
    run: OutboxRun,
) -> tuple[int, OutboxStatus, str | None, int]:
    """Send one confirmation mail; return (outbox id, new status, error, attempts).

    The mail quotes the consent wording recorded with the request it is for, so that what the
    person confirms with its link is that wording (CR-1, CC-3)."""
    target = found.get(row.subscription_id) if row.subscription_id is not None else None
    # Only a still-pending request for this very grant is confirmed by mail: after an opt-out,
    # a newer signup or an erasure, the mail is dropped (OO-7, CC-3).
    if (
        target is None
        or target[0].status != SubscriptionStatus.PENDING
        or target[0].grant_event_id != row.consent_event_id
        or row.consent_event_id is None
    ):
        run.dropped += 1
        return row.id, OutboxStatus.DROPPED, None, row.attempts
    subscription, subscriber, mailing_list, sender = target
    token = runtime.signer.confirm_token(row.consent_event_id)
    data = system_mail.confirmation(
        to=subscriber.email,
        mailing_list=ListIdentity.of(mailing_list),
        sender=SenderIdentity.of(sender),
        confirm_url=runtime.confirm_url(token),
        consent_text=wordings.get(row.consent_event_id),
        wording_on_page=row.consent_event_id in wordings,
        expires_days=max(1, runtime.settings.confirm_token_max_age // 86400),
        # The language of the signup this mail is for (the latest grant: an older one's mail
        # is dropped above), else the list's.
        language=subscription.language,
    )
    try:
        # SG-4: VERP, so that a bounce of the confirmation mail names this outbox row.
        envelope = runtime.bounce_address(outbox_id=row.id) or sender.from_email
        await transport.send(envelope, subscriber.email, data)
    except SendFailure as failure:
        log.warning(
            "confirmation mail not sent outbox=%s to=%s reply=%s",
            row.id,
            mask_address(subscriber.email),
            redact_addresses(failure.reply),
        )
        if failure.permanent or row.attempts >= MAX_ATTEMPTS:
            run.failed += 1
            return row.id, OutboxStatus.FAILED, failure.reply, row.attempts
        run.retrying += 1
        return row.id, OutboxStatus.PENDING, failure.reply, row.attempts
    run.sent += 1
    log.info("confirmation mail sent outbox=%s subscription=%s", row.id, subscription.id)
    return row.id, OutboxStatus.SENT, None, row.attempts


async def run_outbox_sender(
    runtime: Runtime, transport: Transport, system_mail: SystemMail
) -> None:
    """Loop for the life of the process: wake on new outbox rows or every poll interval."""

    async def step() -> bool:
        await send_due(runtime, transport, system_mail)
        return False

    await run_forever(
        step,
        name="outbox sender",
        idle_seconds=runtime.settings.outbox_poll_seconds,
        wakeup=runtime.outbox_wakeup,
    )
