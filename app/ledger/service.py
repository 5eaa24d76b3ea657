"""Proof (CR-3): verifying the consent ledger's hash chain. (The per-campaign compliance report,
which reads the ledger for every recipient, is ``app.campaigns.compliance_report``.)"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.ledger import repository as repo
from app.ledger.chain import event_hash
from app.models import ConsentEvent

# Rows per short session. A batch of events is a few hundred kilobytes at most.
VERIFY_BATCH = 1000


# --- verification --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerBreak:
    """The first place a sender's chain does not hold."""

    sender_id: int
    event_id: int | None  # None: the chain itself holds but does not end at the sender's head
    reason: str

    def __str__(self) -> str:
        if self.event_id is None:
            return f"sender {self.sender_id}: {self.reason}"
        return f"event {self.event_id} (sender {self.sender_id}): {self.reason}"


@dataclass(slots=True)
class LedgerVerdict:
    """What ``verify_ledger`` found: counts, and the first break if any."""

    events: int = 0  # events whose content was recomputed
    purged: int = 0  # purged events, verified by their tombstones' recorded hashes
    senders: int = 0
    broken: LedgerBreak | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def summary(self) -> str:
        if self.broken is not None:
            return f"ledger broken: {self.broken}"
        purged = f" ({self.purged} purged, verified by tombstone)" if self.purged else ""
        return f"ledger ok: {self.events + self.purged} events{purged}, {self.senders} senders"


@dataclass(frozen=True, slots=True)
class _Link:
    id: int
    prev_hash: str | None
    chain_hash: str | None
    event: ConsentEvent | None  # None: a tombstone, whose content is gone


async def _snapshot(session: AsyncSession) -> None:
    """Read a batch's events and tombstones from one snapshot, so that a purge turning an
    event into a tombstone between the two queries can neither hide it nor show it twice.
    SQLite transactions are serialisable already."""
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def _next_links(
    sessionmaker: async_sessionmaker[AsyncSession], sender_id: int, after_id: int
) -> list[_Link]:
    """The next links of a sender's chain after ``after_id``: its events and the tombstones of
    purged ones, merged in id order (ids are never reused, not even on SQLite)."""
    # One short session per batch: on SQLite a transaction holds the write lock.
    async with sessionmaker() as session:
        await _snapshot(session)
        events = await repo.events_after(session, sender_id, after_id, VERIFY_BATCH)
        tombstones = await repo.tombstones_after(session, sender_id, after_id, VERIFY_BATCH)
    # Each list is complete only up to its last id if the limit cut it short.
    bound = min(
        events[-1].id if len(events) == VERIFY_BATCH else math.inf,
        tombstones[-1].event_id if len(tombstones) == VERIFY_BATCH else math.inf,
    )
    links = [
        _Link(t.event_id, t.prev_hash, t.chain_hash, None)
        for t in tombstones
        if t.event_id <= bound
    ]
    links += [_Link(e.id, e.prev_hash, e.chain_hash, e) for e in events if e.id <= bound]
    links.sort(key=lambda link: (link.id, link.event is not None))
    return links


def _check_link(link: _Link, prev_hash: str | None, prev_id: int | None) -> str:
    """Why this link breaks the chain, or the empty string."""
    if link.prev_hash != prev_hash:
        if prev_id is None:
            return "does not start the chain (an event before it is missing)"
        return f"does not follow {prev_id}"
    if link.event is None:
        return ""  # a tombstone's hashes are taken as recorded: its content was purged (CR-2)
    if link.chain_hash is None:
        return "has no hash: it was written around the ledger"
    if event_hash(link.prev_hash, link.event) != link.chain_hash:
        return "content does not match its hash"
    return ""


async def _verify_sender(
    sessionmaker: async_sessionmaker[AsyncSession], sender_id: int, verdict: LedgerVerdict
) -> LedgerBreak | None:
    prev_hash: str | None = None
    prev_id: int | None = None
    after_id = 0
    while True:
        links = await _next_links(sessionmaker, sender_id, after_id)
        if not links:
            async with sessionmaker() as session:
                end = await repo.chain_end(session, sender_id, after_id)
            if end is None:
                return None
            if end.more:
                continue  # appended since the last batch: walk on
            if end.head == prev_hash:
                return None
            if prev_id is None:
                return LedgerBreak(sender_id, None, "has a ledger head but no events")
            return LedgerBreak(
                sender_id,
                None,
                f"its chain ends at event {prev_id}, which is not its ledger head "
                "(a later event is missing, or the head was altered)",
            )
        for link in links:
            reason = _check_link(link, prev_hash, prev_id)
            if reason:
                return LedgerBreak(sender_id, link.id, reason)
            if link.event is None:
                verdict.purged += 1
            else:
                verdict.events += 1
            prev_hash, prev_id = link.chain_hash, link.id
        after_id = links[-1].id


async def verify_ledger(sessionmaker: async_sessionmaker[AsyncSession]) -> LedgerVerdict:
    """CR-3: walk each sender's events by id, in batches (bounded memory), recompute each
    event's hash from its content and its recorded predecessor, check that predecessor is the
    previous link, and that the chain ends at ``Sender.ledger_head``. A purged event's
    tombstone stands in for it with its recorded hashes. Stops at the first break."""
    async with sessionmaker() as session:
        senders = await repo.sender_ids(session)
    verdict = LedgerVerdict()
    for sender_id in senders:
        broken = await _verify_sender(sessionmaker, sender_id, verdict)
        verdict.senders += 1
        if broken is not None:
            verdict.broken = broken
            return verdict
    return verdict
