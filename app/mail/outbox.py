"""The outbox sender: system mails written by a request's transaction, sent afterwards.

Rows are claimed with a short lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sent outside any
transaction, then marked sent, or retried with exponential backoff on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from app.addresses import mask_address
from app.mail.system_mail import SystemMail
from app.mail.transport import SendFailure, Transport
from app.models import MailingList, OutboxMessage, Sender, Subscriber, Subscription
from app.models.base import utcnow
from app.models.enums import OutboxStatus, SubscriptionStatus
from app.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
CLAIM_LEASE = timedelta(minutes=5)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 6 * 3600))


@dataclass
class OutboxRun:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    retrying: int = 0


async def send_due(
    runtime: Runtime, transport: Transport, system_mail: SystemMail, *, limit: int = 50
) -> OutboxRun:
    """Send what is due now; return the counts."""
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
        claimed = [row.id for row in rows]
    for outbox_id in claimed:
        await _send_one(runtime, transport, system_mail, outbox_id, run)
    return run


async def _send_one(
    runtime: Runtime, transport: Transport, system_mail: SystemMail, outbox_id: int, run: OutboxRun
) -> None:
    async with runtime.sessionmaker() as session:
        row = await session.get(OutboxMessage, outbox_id)
        if row is None:
            return
        found = (
            await session.execute(
                select(Subscription, Subscriber, MailingList, Sender)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .join(MailingList, MailingList.id == Subscription.list_id)
                .join(Sender, Sender.id == MailingList.sender_id)
                .where(Subscription.id == row.subscription_id)
            )
        ).first()
        # No rollback() here: it would expire the rows just read, and reading them after the
        # session closes would fail. Closing the session ends the read transaction and keeps
        # their loaded state.
    # Only a still-pending request for this very grant is confirmed by mail: after an opt-out,
    # a newer signup or an erasure, the mail is dropped (OO-7, CC-3).
    if (
        found is None
        or found[0].status != SubscriptionStatus.PENDING
        or found[0].grant_event_id != row.consent_event_id
        or row.consent_event_id is None
    ):
        await _finish(runtime, outbox_id, OutboxStatus.DROPPED, None)
        run.dropped += 1
        return
    subscription, subscriber, mailing_list, sender = found
    token = runtime.signer.confirm_token(row.consent_event_id)
    message = system_mail.confirmation(
        to=subscriber.email,
        mailing_list=mailing_list,
        sender=sender,
        confirm_url=runtime.confirm_url(token),
        expires_days=max(1, runtime.settings.confirm_token_max_age // 86400),
    )
    try:
        await transport.send(sender.from_email, subscriber.email, message.as_bytes())
    except SendFailure as failure:
        if failure.permanent or row.attempts >= MAX_ATTEMPTS:
            await _finish(runtime, outbox_id, OutboxStatus.FAILED, failure.reply)
            run.failed += 1
        else:
            await _retry_later(runtime, outbox_id, row.attempts, failure.reply)
            run.retrying += 1
        log.warning(
            "confirmation mail not sent outbox=%s to=%s reply=%s",
            outbox_id,
            mask_address(subscriber.email),
            failure.reply,
        )
        return
    await _finish(runtime, outbox_id, OutboxStatus.SENT, None)
    run.sent += 1
    log.info("confirmation mail sent outbox=%s subscription=%s", outbox_id, subscription.id)


async def _finish(
    runtime: Runtime, outbox_id: int, status: OutboxStatus, error: str | None
) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        row = await session.get(OutboxMessage, outbox_id)
        if row is not None:
            row.status = status
            row.last_error = error
            if status is OutboxStatus.SENT:
                row.sent_at = utcnow()


async def _retry_later(runtime: Runtime, outbox_id: int, attempts: int, error: str) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        row = await session.get(OutboxMessage, outbox_id)
        if row is not None:
            row.last_error = error
            row.next_attempt_at = utcnow() + backoff(attempts)


async def run_outbox_sender(
    runtime: Runtime, transport: Transport, system_mail: SystemMail
) -> None:
    """Loop for the life of the process: wake on new outbox rows or every poll interval."""
    while True:
        try:
            await send_due(runtime, transport, system_mail)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbox sender failed; retrying")
        runtime.outbox_wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                runtime.outbox_wakeup.wait(), timeout=runtime.settings.outbox_poll_seconds
            )
