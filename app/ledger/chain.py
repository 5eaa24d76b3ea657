"""The consent ledger's hash chain (CR-3): tamper evidence for consent and opt-out events.

Every ConsentEvent carries ``chain_hash = sha256(prev_hash || canonical JSON of its content)``,
where ``prev_hash`` is the ``chain_hash`` of the previous event of the same sender, and
``Sender.ledger_head`` holds the newest one. Editing, deleting or inserting an event behind the
application's back breaks the chain at that event, which ``shodaku verify-ledger`` names.

The hash is filled in by a ``before_flush`` listener on every ORM Session, so no code path that
records an event (signup, confirmation, recorded consent, opt-out, import) can forget it. The
listener is registered when this module is imported; ``app.db`` imports it, and every session
of the application comes from ``app.db``'s sessionmaker, so it is always in place before the
first event is written. (Registering it from ``app.models`` would also work, but the models
package is kept free of behaviour.)

What is hashed is the event's evidence, not its bookkeeping: ``id`` (assigned by the database
after the hash), ``subscriber_id`` (set to NULL when the person is erased, DS-3),
``retain_until`` (set by the purge, CR-2) and ``created_at`` are left out, so those legitimate
changes do not read as tampering.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Table, event, inspect, select, update
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from app.config import Settings
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


def _events_to_chain(session: Session, instances: Iterable[object] | None) -> list[ConsentEvent]:
    pending = [obj for obj in session.new if isinstance(obj, ConsentEvent)]
    if instances is not None:
        # flush([objects]) writes only those: chain only what this flush inserts.
        chosen = {id(obj) for obj in instances}
        pending = [obj for obj in pending if id(obj) in chosen]
    # The unit of work inserts in the order objects were added, and the database hands out
    # ascending ids in that order: the chain order is the id order the verifier walks.
    pending.sort(key=_insert_order)
    return pending


def _insert_order(obj: ConsentEvent) -> int:
    order = inspect(obj).insert_order
    return order if order is not None else 0


def chain_new_events(
    session: Session, _flush_context: UOWTransaction, instances: Iterable[object] | None
) -> None:
    """CR-3: before a flush inserts consent events, chain each to its sender's ledger head.

    For each sender concerned (in id order, so two transactions locking the same senders take
    the locks in the same order and cannot deadlock on them), read ``Sender.ledger_head`` with
    ``SELECT … FOR UPDATE`` on PostgreSQL: a concurrent append for the same sender waits until
    this transaction ends and then reads the head it left, so the chain never forks. On SQLite
    every transaction already holds the write lock (``BEGIN IMMEDIATE``). The lock is taken
    before the INSERT, so ids of one sender's events ascend in chain order.
    """
    events = _events_to_chain(session, instances)
    if not events:
        return
    by_sender: dict[int, list[ConsentEvent]] = {}
    for ev in events:
        # Python-side column defaults are applied only at INSERT, after this hook: apply the
        # hashed ones now so the hash covers what is stored.
        if ev.occurred_at is None:
            ev.occurred_at = utcnow()
        if ev.evidence is None:
            ev.evidence = {}
        if ev.sender_id is not None:
            by_sender.setdefault(ev.sender_id, []).append(ev)
    for sender_id in sorted(by_sender):
        row = session.execute(
            select(_senders.c.ledger_head).where(_senders.c.id == sender_id).with_for_update()
        ).first()
        if row is None:
            continue  # no such sender: the INSERT fails on its foreign key
        head: str | None = row[0]
        for ev in by_sender[sender_id]:
            ev.prev_hash = head
            ev.chain_hash = head = event_hash(head, ev)
        # Core UPDATE, not the ORM object: the Sender may not be loaded, and must not have its
        # updated_at bumped (the sender's identity did not change).
        session.execute(
            update(_senders)
            .where(_senders.c.id == sender_id)
            .values(ledger_head=head, updated_at=_senders.c.updated_at)
        )
        loaded = session.identity_map.get(identity_key(Sender, sender_id))
        if loaded is not None:
            set_committed_value(loaded, "ledger_head", head)


def install() -> None:
    """Register the listener once, on every ORM Session (async sessions flush through one)."""
    if not event.contains(Session, "before_flush", chain_new_events):
        event.listen(Session, "before_flush", chain_new_events)


install()


async def verify_command(settings: Settings) -> int:
    """``shodaku verify-ledger`` (CR-3): walk every sender's chain; print ``ledger ok: …`` and
    return 0, or name the first broken event and return 1."""
    from app.ledger.service import verify_command as run

    return await run(settings)
