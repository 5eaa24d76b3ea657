"""Retention (CR-2, Ordinance 4(2)): how long each consent record is held, and the purge that
removes what is past its hold.

The hold of a consent or opt-out event, ``retain_until``::

    max(last send to the address by the event's sender,
        the event's own time,
        the address's latest withdrawal from that sender,
        now, while the address is still being mailed by that sender)
    + max(sender.retention_days, legal minimum)          (policy.hold_until)

"Still being mailed" is an active subscription to one of the sender's lists, or a delivery of
one of its campaigns that may still go out: sending has not stopped, so the hold runs from now.
The legal minimum is one month after the day sending stops (31 days), one year (366 days) for a
sender under a measures order; the default policy is three years after the last send.

When it is computed:

- by the purge, for every event whose hold was never computed or has run out (the only events
  a purge could remove), inside the transaction that would remove it. The event goes only if
  the hold computed there and then has passed; otherwise the new hold is written and the event
  is not looked at again until that moment comes. So every event gets its hold on the first
  purge after it is recorded, and an event of an address mailed again later is held again;
- at erasure (DS-3), for every event of the address, before the delivery history it depends on
  is deleted: that hold is reported to the caller as the legal hold;
- on the fly for the disclosure export (DS-1), without writing it.

A hold never shrinks: the stored value is a floor (max(stored, computed)). Erasure deletes the
deliveries the last send was read from, and a hold once reported to a person is kept; a lower
retention policy applies to holds computed from then on, a higher one extends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.background import run_forever
from app.models.base import utcnow
from app.privacy import repository as repo
from app.privacy.repository import AddressActivity, HeldEvent
from app.runtime import Runtime
from app.senders.retention_policy import hold_until

log = logging.getLogger(__name__)

# Rows handled per transaction: bounded memory, and short write locks on SQLite.
EVENT_BATCH = 500
OUTBOX_BATCH = 1000
# An import can hold 100,000 items: a few imports per transaction.
IMPORT_BATCH = 5
# A system mail already sent, failed or dropped is kept this long for troubleshooting.
OUTBOX_KEEP = timedelta(days=30)

# The in-process purge (SQLite): first run a while after start, then daily.
FIRST_PURGE_DELAY_SECONDS = 600.0
PURGE_INTERVAL_SECONDS = 24 * 3600.0
RETRY_AFTER_FAILURE_SECONDS = 3600.0


async def compute_holds(
    session: AsyncSession, events: Sequence[HeldEvent], now: datetime
) -> dict[int, datetime]:
    """CR-2: each event's hold (``retain_until``) as defined in this module's docstring, never
    below the hold already stored. Five queries per call, whatever the number of events."""
    activity = await repo.address_activity(session, {e.email for e in events})
    policies = await repo.sender_policies(session, {e.sender_id for e in events})
    holds: dict[int, datetime] = {}
    for event in events:
        found = activity.get((event.email, event.sender_id), AddressActivity())
        moments = [event.occurred_at, found.last_send, found.latest_withdrawal]
        if found.still_mailed:
            moments.append(now)
        base = max(m for m in moments if m is not None)
        retention_days, under_measures_order = policies[event.sender_id]
        computed = hold_until(base, retention_days, under_measures_order)
        stored = event.retain_until
        holds[event.id] = computed if stored is None else max(computed, stored)
    return holds


@dataclass
class PurgeReport:
    """What a purge removed (or, dry, would remove)."""

    consent_events: int = 0
    tombstones: int = 0
    holds_computed: int = 0
    imports: int = 0
    import_items: int = 0
    outbox_messages: int = 0

    def lines(self, *, dry_run: bool) -> list[str]:
        verb = "would remove" if dry_run else "removed"
        return [
            f"consent events past their hold {verb}: {self.consent_events}",
            f"ledger tombstones {'that would be ' if dry_run else ''}written: {self.tombstones}",
            f"imports past their 3 years {verb}: {self.imports} "
            f"(with {self.import_items} import items)",
            f"outbox messages older than {OUTBOX_KEEP.days} days {verb}: {self.outbox_messages}",
            f"consent events held longer (retain_until set): {self.holds_computed}",
        ]


@contextlib.asynccontextmanager
async def _unit(
    sessionmaker: async_sessionmaker[AsyncSession], *, dry_run: bool
) -> AsyncIterator[AsyncSession]:
    """One batch, one transaction: committed, or rolled back whole in a dry run (so a dry run
    takes exactly the path of a real one and reports the same counts)."""
    async with sessionmaker() as session:
        await session.begin()
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        if dry_run:
            await session.rollback()
        else:
            await session.commit()


async def _purge_outbox(
    sessionmaker: async_sessionmaker[AsyncSession], report: PurgeReport, now: datetime, dry: bool
) -> None:
    after = 0
    while True:
        async with _unit(sessionmaker, dry_run=dry) as session:
            ids = await repo.expired_outbox_ids(
                session, before=now - OUTBOX_KEEP, after_id=after, limit=OUTBOX_BATCH
            )
            report.outbox_messages += await repo.delete_outbox(session, ids)
        if not ids:
            return
        after = ids[-1]


async def _purge_imports(
    sessionmaker: async_sessionmaker[AsyncSession], report: PurgeReport, now: datetime, dry: bool
) -> None:
    """DS-4: an import's acquisition record and the addresses it brought, after its 3 years."""
    after = 0
    while True:
        async with _unit(sessionmaker, dry_run=dry) as session:
            ids = await repo.expired_import_ids(
                session, now=now, after_id=after, limit=IMPORT_BATCH
            )
            imports, items = await repo.delete_imports(session, ids)
            report.imports += imports
            report.import_items += items
        if not ids:
            return
        after = ids[-1]


async def _purge_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    report: PurgeReport,
    now: datetime,
    dry: bool,
    batch_size: int,
) -> None:
    """CR-2: for each batch of events whose hold is unknown or has run out, compute the hold
    now; remove those past it, each leaving a tombstone in the same transaction (CR-3), and
    write the new hold of the others. Never removes an event before its hold, nor one of an
    address still being mailed (its hold runs from now)."""
    after = 0
    while True:
        async with _unit(sessionmaker, dry_run=dry) as session:
            batch = await repo.hold_candidates(session, after_id=after, now=now, limit=batch_size)
            if batch:
                holds = await compute_holds(session, batch, now)
                expired = [e for e in batch if holds[e.id] < now]
                extended = {
                    e.id: holds[e.id]
                    for e in batch
                    if holds[e.id] >= now and holds[e.id] != e.retain_until
                }
                await repo.set_retain_until(session, extended)
                report.holds_computed += len(extended)
                if expired:
                    ids = [e.id for e in expired]
                    await repo.release_references(session, ids)
                    report.tombstones += await repo.write_tombstones(session, expired, now)
                    report.consent_events += await repo.delete_events(session, ids)
        if not batch:
            return
        after = batch[-1].id


async def purge(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    dry_run: bool,
    now: datetime | None = None,
    batch_size: int = EVENT_BATCH,
) -> PurgeReport:
    """CR-2, DS-4: remove what is past its hold, in batches (bounded memory, short
    transactions): finished outbox messages older than 30 days, imports past their 3 years with
    their items, then consent events past ``retain_until``. The audit log is not purged (it
    holds no addresses). ``dry_run`` rolls every batch back and reports the same counts."""
    now = now or utcnow()
    report = PurgeReport()
    # Outbox rows and import items refer to events: they go first.
    await _purge_outbox(sessionmaker, report, now, dry_run)
    await _purge_imports(sessionmaker, report, now, dry_run)
    await _purge_events(sessionmaker, report, now, dry_run, batch_size)
    log.info("retention purge%s: %s", " (dry run)" if dry_run else "", asdict(report))
    return report


async def run_periodic_purge(
    runtime: Runtime,
    *,
    first_delay: float = FIRST_PURGE_DELAY_SECONDS,
    interval: float = PURGE_INTERVAL_SECONDS,
    retry_after: float = RETRY_AFTER_FAILURE_SECONDS,
) -> None:
    """CR-2 on SQLite: the purge in-process, daily, the first run a while after start. A
    failed run is logged and retried later; the loop ends only when cancelled. (On PostgreSQL
    the workers run it as a procrastinate periodic task.)"""
    await asyncio.sleep(first_delay)

    async def step() -> bool:
        await purge(runtime.sessionmaker, dry_run=False)
        return False

    await run_forever(
        step, name="retention purge", idle_seconds=interval, retry_seconds=retry_after
    )
