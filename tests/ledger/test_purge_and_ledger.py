"""CR-2 meets CR-3: the real retention purge leaves tombstones the verifier accepts, and the
chain goes on from them with ids that never go back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.privacy.retention import purge
from tests.factories import make_world
from tests.ledger.helpers import grant, ledger_head, verify, withdraw
from tests.queries import events_of_sender as events_of

TEN_YEARS_ON = timedelta(days=3653)


async def test_cr2_cr3_after_the_purge_the_ledger_verifies_and_new_events_chain_on(runtime):
    world = await make_world(runtime)
    await grant(runtime, world.list_id, "taro@example.jp")
    withdrawn = await withdraw(runtime, world.sender_id, "taro@example.jp")
    head_before = await ledger_head(runtime, world.sender_id)

    report = await purge(runtime.sessionmaker, dry_run=False, now=datetime.now(UTC) + TEN_YEARS_ON)
    assert report.consent_events == 2
    assert report.tombstones == 2
    assert await events_of(runtime, world.sender_id) == []
    assert await ledger_head(runtime, world.sender_id) == head_before
    verdict = await verify(runtime)
    assert verdict.ok, verdict.summary()
    assert verdict.summary() == "ledger ok: 2 events (2 purged, verified by tombstone), 1 senders"

    # Every event of the installation is gone: the next one must still get a fresh id (SQLite
    # would otherwise hand out 1 again, colliding with the tombstones' ids).
    new = await grant(runtime, world.list_id, "hanako@example.jp")
    assert new > max(withdrawn)
    [event] = await events_of(runtime, world.sender_id)
    assert event.prev_hash == head_before
    verdict = await verify(runtime)
    assert verdict.ok, verdict.summary()
    assert verdict.summary() == "ledger ok: 3 events (2 purged, verified by tombstone), 1 senders"
