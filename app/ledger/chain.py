"""The consent ledger's hash chain (CR-3): tamper evidence for consent and opt-out events.

Every ConsentEvent carries ``chain_hash = sha256(prev_hash || canonical JSON of its content)``,
where ``prev_hash`` is the ``chain_hash`` of the previous event of the same sender, and
``Sender.ledger_head`` holds the newest one. Editing, deleting or inserting an event behind the
application's back breaks the chain at that event, which ``shodaku verify-ledger`` names.

Every event is written by ``append_event``, a visible step where the event is recorded, which
chains it under a lock on the sender's head and inserts it. (Until 2026-12 a ``before_flush``
listener on every session did this out of sight, and the database module imported the ledger to
install it.)

What is hashed is the event's evidence, not its bookkeeping: ``id`` (assigned by the database
after the hash), ``subscriber_id`` (set to NULL when the person is erased, DS-3),
``retain_until`` (set by the purge, CR-2) and ``created_at`` are left out, so those legitimate
changes do not read as tampering.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from app.models import ConsentEvent, Sender
from app.models.base import utcnow

# The event's content, in the words of CR-1. Changing this list or the canonical form below
# breaks every existing chain: it is part of the ledger format.
CHAINED_FIELDS = (
    "kind",
    "email",
    "sender_id",
    "list_id",
    "basis",
    "method",
    "occurred_at",
    "obtained_at",
    "source_url",
    "ip",
    "user_agent",
    "consent_text_hash",
    "purpose",
    "evidence",
    "double_opt_in_requested_at",
    "confirmed_at",
    "recorded_by",
    "scope",
    "channel",
    "note",
)


def _json_value(value: Any) -> Any:
    """A JSON value as it reads back from either database.

    PostgreSQL's JSONB stores numbers as exact decimals: 1e16 comes back as the integer
    10000000000000000, 100.0 as the float 100.0. So every integral float is canonicalised to
    the integer its decimal text denotes, and both read the same. Keys become text, as JSON
    makes them.
    """
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(Decimal(repr(value)))
        return value
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON")


def _field_value(value: Any) -> Any:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, datetime):
        # Microseconds always written: a timestamp that happens to fall on a whole second must
        # hash the same before and after the round trip through the database.
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return _json_value(value)


def canonical_content(event: ConsentEvent) -> str:
    """CR-3: the event's content as canonical JSON (sorted keys, no whitespace, UTF-8 text)."""
    content = {name: _field_value(getattr(event, name)) for name in CHAINED_FIELDS}
    return json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def event_hash(prev_hash: str | None, event: ConsentEvent) -> str:
    """CR-3: ``sha256(prev_hash || canonical JSON)``, hex; the first event of a sender chains
    from the empty string."""
    data = (prev_hash or "") + canonical_content(event)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


_senders: Table = Sender.__table__  # type: ignore[assignment]


async def append_event(session: AsyncSession, event: ConsentEvent) -> ConsentEvent:
    """CR-1, CR-3: the one way a consent or opt-out event enters the ledger: chain it to its
    sender's ledger head, then insert it (the flush gives it its id).

    The head is read with ``SELECT … FOR UPDATE`` on PostgreSQL: a concurrent append for the
    same sender waits until this transaction ends and then reads the head it left, so the chain
    never forks. On SQLite every transaction already holds the write lock (``BEGIN
    IMMEDIATE``). The lock is taken before the INSERT, so the ids of one sender's events ascend
    in chain order, which is the order ``shodaku verify-ledger`` walks. Appending several events
    for one sender in a transaction takes the same lock again and reads the head the previous
    append left. A transaction that appends for several senders appends in sender-id order,
    so that two such transactions take the senders' locks in the same order and cannot deadlock
    (the operator's opt-out from every sender does: ``senders.repository.all_ids``).
    """
    # Python-side column defaults are applied only at INSERT: apply the hashed ones now so the
    # hash covers what is stored.
    if event.occurred_at is None:
        event.occurred_at = utcnow()
    if event.evidence is None:
        event.evidence = {}
    row = (
        await session.execute(
            select(_senders.c.ledger_head).where(_senders.c.id == event.sender_id).with_for_update()
        )
    ).first()
    if row is not None:  # no such sender: the INSERT below fails on its foreign key
        event.prev_hash = row[0]
        event.chain_hash = head = event_hash(row[0], event)
        # Core UPDATE, not the ORM object: the Sender may not be loaded, and must not have its
        # updated_at bumped (the sender's identity did not change).
        await session.execute(
            update(_senders)
            .where(_senders.c.id == event.sender_id)
            .values(ledger_head=head, updated_at=_senders.c.updated_at)
        )
        loaded = session.identity_map.get(identity_key(Sender, event.sender_id))
        if loaded is not None:
            set_committed_value(loaded, "ledger_head", head)
    session.add(event)
    await session.flush()
    return event
