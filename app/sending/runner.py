"""Sending a campaign: claim through the gate, compose, open SMTP transactions inside the send
window, transfer the data, record every outcome in the delivery ledger.

The delivery ledger is the truth, not any queue: whatever calls ``drain`` (the in-process loop
on SQLite, procrastinate jobs on PostgreSQL), a lost or repeated call can neither skip nor
double-send a recipient, because rows are claimed under a lease and only rows still ``sending``
and still passing the gate are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses import mask_address, redact_addresses
from app.mail.compose import CampaignComposers, Recipient, Version
from app.mail.identity import ListIdentity, SenderIdentity
from app.mail.sandbox import message_budget
from app.mail.transport import Connection, SendFailure, Transport, retry_delay
from app.models import Campaign, CampaignVariant, MailingList, Sender
from app.models.base import utcnow
from app.models.enums import CampaignStatus, DeliveryStatus
from app.runtime import Runtime
from app.sending import deliveries
from app.sending.bounces import record_hard_bounce
from app.sending.deliveries import ClaimedRecipient, DeliveryResult
from app.sending.ratelimit import RateLimiter

log = logging.getLogger(__name__)

# The render budget of one message at send time, all its parts together. A newsletter renders in
# well under a millisecond; a template that takes longer for a real recipient than the save
# check allowed for the sample one fails that delivery rather than holding the worker (DS-6).
MESSAGE_RENDER_SECONDS = 0.1


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class DrainReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    finished: bool = False


class DeliveryRunner:
    """Sends campaigns over one transport. One per process; safe to drain several campaigns."""

    def __init__(
        self,
        runtime: Runtime,
        transport: Transport,
        *,
        worker_id: str | None = None,
        rate: RateLimiter | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.transport = transport
        self.worker_id = worker_id or default_worker_id()
        self.rate = rate or RateLimiter(self.settings.send_rate)
        self._composers: dict[int, CampaignComposers] = {}
        # One thread composes, one chunk at a time: a composer's caches see no concurrency.
        self._compose_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compose")

    @contextlib.asynccontextmanager
    async def _bookkeeping_transaction(self) -> AsyncIterator[AsyncSession]:
        """A transaction of the worker's own bookkeeping (claims, send windows, results).

        On PostgreSQL it commits without waiting for the WAL flush (synchronous_commit off):
        the worker's pipeline is bound by commit latency (measured: 1.5 ms against 0.3 ms per
        commit here). A database crash can lose only the last few such commits, which puts those
        rows back to an earlier state; their lease then expires and they are claimed again
        through the gate, so the worst case is a duplicate, never a skipped recipient. Opt-outs
        keep synchronous commit, and since the WAL is sequential, an opt-out's flush also makes
        every earlier worker commit durable: the send window's ordering (SG-2) still holds.
        """
        async with self.runtime.sessionmaker() as session, session.begin():
            if not self.settings.is_sqlite:
                await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            yield session

    async def _composer(self, campaign: Campaign) -> CampaignComposers:
        """Compiled once per campaign, for every language (the template copies in the campaign
        and its variants never change): one that cannot be built fails here, before anything
        is claimed."""
        composers = self._composers.get(campaign.id)
        if composers is None:
            async with self.runtime.sessionmaker() as session:
                mailing_list = await session.get(MailingList, campaign.list_id)
                sender = await session.get(Sender, campaign.sender_id)
                variants = (
                    await session.scalars(
                        select(CampaignVariant).where(CampaignVariant.campaign_id == campaign.id)
                    )
                ).all()
            assert mailing_list is not None
            assert sender is not None
            composers = CampaignComposers(
                main=Version(campaign.subject or "", campaign.html or "", campaign.text),
                versions={
                    v.language: Version(v.subject or "", v.html or "", v.text) for v in variants
                },
                sender=SenderIdentity.of(sender),
                mailing_list=ListIdentity.of(mailing_list),
                settings=self.settings,
            )
            composers.build_all()
            self._composers[campaign.id] = composers
        return composers

    async def _materialize_some(self, campaign_id: int) -> bool:
        """Materialise one more batch of deliveries if the campaign still needs it. On
        PostgreSQL the campaign row is locked SKIP LOCKED so one worker does it at a time."""
        async with self._bookkeeping_transaction() as session:
            stmt = select(Campaign).where(
                Campaign.id == campaign_id,
                Campaign.status == CampaignStatus.SENDING,
                Campaign.materialized.is_(False),
            )
            if not self.settings.is_sqlite:
                stmt = stmt.with_for_update(skip_locked=True)
            campaign = (await session.scalars(stmt)).first()
            if campaign is None:
                return False
            # SQLite: a batch holds the one write lock that opt-outs wait for, so keep it short;
            # PostgreSQL locks nothing global, and bigger batches materialise a million recipients
            # in a fraction of the time.
            batch = 1_000 if self.settings.is_sqlite else 50_000
            if not await deliveries.materialize_batch(session, campaign, batch_size=batch):
                campaign.materialized = True
            return True

    async def drain(self, campaign_id: int, *, max_batches: int | None = None) -> DrainReport:
        """Send the campaign's due deliveries until none is left to claim (or ``max_batches``).

        Marks the campaign ``sent`` when every delivery is final.
        """
        report = DrainReport()
        batches = 0
        while max_batches is None or batches < max_batches:
            materializing = await self._materialize_some(campaign_id)
            async with self.runtime.sessionmaker() as session:
                campaign = await session.get(Campaign, campaign_id)
            if campaign is None or campaign.status != CampaignStatus.SENDING:
                break
            # Built before anything is claimed: a campaign that cannot be composed at all (its
            # DKIM key unreadable, say) is paused, not left with rows stranded under a lease.
            try:
                composer = await self._composer(campaign)
            except Exception as exc:
                await self._pause_uncomposable(campaign_id, exc)
                break
            async with self._bookkeeping_transaction() as session:
                claim = await deliveries.claim_batch(
                    session,
                    campaign_id=campaign_id,
                    worker=self.worker_id,
                    limit=self.settings.send_batch_size,
                    lease=timedelta(seconds=self.settings.send_lease_seconds),
                )
            report.claimed += len(claim.recipients)
            report.skipped += claim.skipped_no_consent + claim.skipped_suppressed
            batches += 1
            if claim.recipients:
                await self._send_claimed(campaign, composer, claim.recipients, report)
            elif not materializing and not (claim.skipped_no_consent or claim.skipped_suppressed):
                break
        report.finished = await self._finish_if_done(campaign_id)
        return report

    async def _finish_if_done(self, campaign_id: int) -> bool:
        async with self.runtime.sessionmaker() as session, session.begin():
            stmt = select(Campaign).where(Campaign.id == campaign_id)
            if not self.settings.is_sqlite:
                stmt = stmt.with_for_update()
            campaign = (await session.scalars(stmt)).first()
            if (
                campaign is None
                or campaign.status != CampaignStatus.SENDING
                or not campaign.materialized
                or await deliveries.has_unfinished(session, campaign_id)
            ):
                return False
            campaign.status = CampaignStatus.SENT
            campaign.finished_at = utcnow()
            self._composers.pop(campaign_id, None)
            log.info("campaign %s finished", campaign_id)
            return True

    async def _pause_uncomposable(self, campaign_id: int, exc: Exception) -> None:
        log.error(
            "campaign %s paused: its messages cannot be composed (%s: %s)",
            campaign_id,
            type(exc).__name__,
            exc,
        )
        async with self.runtime.sessionmaker() as session, session.begin():
            campaign = await session.get(Campaign, campaign_id)
            if campaign is not None and campaign.status == CampaignStatus.SENDING:
                campaign.status = CampaignStatus.PAUSED
                campaign.updated_at = utcnow()

    async def _send_claimed(
        self,
        campaign: Campaign,
        composer: CampaignComposers,
        recipients: Sequence[ClaimedRecipient],
        report: DrainReport,
    ) -> None:
        size = self.settings.send_concurrency
        pending: list[DeliveryResult] = []
        try:
            for start in range(0, len(recipients), size):
                pending = await self._send_chunk(
                    composer, campaign.list_id, recipients[start : start + size], report, pending
                )
        except BaseException:
            if pending:
                with contextlib.suppress(Exception):
                    await self._record(pending)
            raise
        if pending:
            await self._record(pending)

    async def _record(self, results: Sequence[DeliveryResult]) -> None:
        async with self._bookkeeping_transaction() as session:
            await deliveries.record_results(session, results, worker=self.worker_id)

    def _compose_chunk(
        self, composer: CampaignComposers, list_id: int, chunk: Sequence[ClaimedRecipient]
    ) -> tuple[dict[int, bytes], list[DeliveryResult]]:
        messages: dict[int, bytes] = {}
        uncomposable: list[DeliveryResult] = []
        for r in chunk:
            try:
                with message_budget(MESSAGE_RENDER_SECONDS):
                    messages[r.delivery_id] = composer.compose(
                        self._recipient(r, list_id), r.language
                    )
            except Exception as exc:
                # One person's data cannot make a valid message (a newline in their name, an
                # attribute the template cannot use, a render past its budget): that delivery
                # fails, the others go on. The reason goes to the ledger; the log, no address.
                log.warning("delivery %s not composable: %s", r.delivery_id, type(exc).__name__)
                uncomposable.append(
                    DeliveryResult(
                        r.delivery_id,
                        DeliveryStatus.FAILED,
                        attempts=r.attempts,
                        smtp_response=f"not sent, message not composable: {exc}"[:500],
                    )
                )
        return messages, uncomposable

    async def _send_chunk(
        self,
        composer: CampaignComposers,
        list_id: int,
        chunk: Sequence[ClaimedRecipient],
        report: DrainReport,
        pending: list[DeliveryResult],
    ) -> list[DeliveryResult]:
        """Send one chunk (one message per connection). ``pending`` are the previous chunk's
        outcomes, written in this chunk's send window transaction; this chunk's are returned,
        for the next. One transaction per chunk instead of two: the messages sent but not yet
        recorded stay one chunk's worth, so a crash can still duplicate only those."""
        # Composing is CPU work: done before the window, so the rows are locked only while the
        # SMTP transactions open.
        # On a thread of its own, so that a template slow for real recipients (it can be fast
        # for the sample one the save check renders) never holds the event loop, and with it
        # every opt-out and page of the process; each message has one small budget (DS-6).
        messages, uncomposable = await asyncio.get_running_loop().run_in_executor(
            self._compose_thread,
            functools.partial(self._compose_chunk, composer, list_id, chunk),
        )
        chunk = [r for r in chunk if r.delivery_id in messages]
        refused: list[DeliveryResult] = []
        transferred: list[DeliveryResult] = []
        if pending and self.rate.rate > 0:
            # A send rate can hold the next window back longer than the lease of the rows just
            # sent; were they still unrecorded when it ran out, another worker would send them
            # again. Recorded now, as they are when no chunk follows.
            await self._record(pending)
            pending.clear()
        if chunk:
            await self.rate.acquire(len(chunk))
            async with self.transport.connections(len(chunk)) as connections:
                started, refused = await self._open_transactions(
                    composer, chunk, connections, report, pending
                )
                pending.clear()  # in place: the caller must not write them a second time
                if started:
                    transferred = await self._transfer(chunk, connections, started, messages)
        for result in [*uncomposable, *refused, *transferred]:
            if result.status is DeliveryStatus.SENT:
                report.sent += 1
            elif result.status is DeliveryStatus.FAILED:
                report.failed += 1
            elif result.status is DeliveryStatus.QUEUED:
                report.retried += 1
        return [*pending, *uncomposable, *transferred]

    def _recipient(self, r: ClaimedRecipient, list_id: int) -> Recipient:
        token = self.runtime.signer.unsubscribe_token(r.subscriber_id, list_id, r.address_hash)
        return Recipient(
            subscriber_id=r.subscriber_id,
            email=r.email,
            name=r.name,
            attributes=r.attributes,
            unsubscribe_url=self.runtime.unsubscribe_url(token),
            unsubscribe_mailto=self.runtime.unsubscribe_mailto(
                r.subscriber_id, list_id, r.address_hash
            ),
        )

    async def _open_transactions(
        self,
        composer: CampaignComposers,
        chunk: Sequence[ClaimedRecipient],
        connections: Sequence[Connection],
        report: DrainReport,
        earlier: Sequence[DeliveryResult],
    ) -> tuple[dict[int, int], list[DeliveryResult]]:
        """The send window (SG-1, SG-2): with the rows locked, re-check each delivery and start
        its SMTP transaction (MAIL FROM, RCPT TO); commit only once they have started. The
        ``earlier`` outcomes (the previous chunk's) are written in the same transaction.

        Returns the started deliveries (id -> connection index) and the outcomes of those whose
        transaction was refused, already recorded."""
        results: list[DeliveryResult] = []
        started: dict[int, int] = {}  # delivery id -> index of its connection
        async with self._bookkeeping_transaction() as session:
            if earlier:
                await deliveries.record_results(session, earlier, worker=self.worker_id)
            window = await deliveries.open_send_window(
                session,
                ids=[r.delivery_id for r in chunk],
                worker=self.worker_id,
                lease=timedelta(seconds=self.settings.send_lease_seconds),
            )
            report.skipped += len(window.skipped_no_consent) + len(window.skipped_suppressed)
            if not window.go:
                return started, results
            outcomes = await asyncio.gather(
                *(
                    self._start(
                        connections[i],
                        # SG-4: VERP, so a bounce that arrives later names this delivery.
                        self.runtime.bounce_address(delivery_id=r.delivery_id)
                        or composer.envelope_from,
                        r,
                    )
                    for i, r in enumerate(chunk)
                    if r.delivery_id in window.go
                ),
            )
            index = {r.delivery_id: i for i, r in enumerate(chunk)}
            for recipient, failure in outcomes:
                if failure is None:
                    started[recipient.delivery_id] = index[recipient.delivery_id]
                    continue
                if failure.unknown_recipient:
                    await record_hard_bounce(
                        session,
                        subscriber_id=recipient.subscriber_id,
                        address_hash=recipient.address_hash,
                        refused_delivery_id=recipient.delivery_id,
                        reply_code=failure.code,
                    )
                results.append(self._failed_attempt(recipient, failure))
            if results:
                # Written in the window's transaction so the hard-bounce skip above cannot
                # overwrite the refused delivery's own outcome.
                await deliveries.record_results(session, results, worker=self.worker_id)
        return started, results

    async def _start(
        self, connection: Connection, envelope_from: str, recipient: ClaimedRecipient
    ) -> tuple[ClaimedRecipient, SendFailure | None]:
        try:
            await connection.start(envelope_from, recipient.email)
        except SendFailure as failure:
            return recipient, failure
        return recipient, None

    async def _transfer(
        self,
        chunk: Sequence[ClaimedRecipient],
        connections: Sequence[Connection],
        started: dict[int, int],
        messages: dict[int, bytes],
    ) -> list[DeliveryResult]:
        """DATA, outside any transaction: the transactions have begun, an opt-out now can no
        longer stop these messages (docs/architecture.md: that window is one message)."""
        by_id = {r.delivery_id: r for r in chunk}

        async def finish(delivery_id: int, conn_index: int) -> DeliveryResult:
            recipient = by_id[delivery_id]
            try:
                reply = await connections[conn_index].finish(messages[delivery_id])
            except SendFailure as failure:
                return self._failed_attempt(recipient, failure)
            return DeliveryResult(
                delivery_id,
                DeliveryStatus.SENT,
                attempts=recipient.attempts + 1,
                smtp_response=reply[:500],
            )

        return list(await asyncio.gather(*(finish(d, i) for d, i in started.items())))

    def _failed_attempt(self, recipient: ClaimedRecipient, failure: SendFailure) -> DeliveryResult:
        """A refusal with a reply code counts against the recipient's attempts; an unreachable
        server (no reply at all) says nothing about the recipient, so it never exhausts them:
        an SMTP outage of any length delays a campaign but loses no delivery."""
        attempts = recipient.attempts + 1
        exhausted = failure.code is not None and attempts >= self.settings.send_max_attempts
        if failure.permanent or exhausted:
            log.warning(
                "delivery %s failed to=%s reply=%s",
                recipient.delivery_id,
                mask_address(recipient.email),
                redact_addresses(failure.reply),
            )
            return DeliveryResult(
                recipient.delivery_id,
                DeliveryStatus.FAILED,
                attempts=attempts,
                smtp_response=failure.reply[:500],
            )
        return DeliveryResult(
            recipient.delivery_id,
            DeliveryStatus.QUEUED,
            attempts=attempts,
            smtp_response=failure.reply[:500],
            next_attempt_at=utcnow() + retry_delay(attempts),
        )
