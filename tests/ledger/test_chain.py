"""CR-3 tamper evidence: every consent and opt-out event is hashed into its sender's chain as
it is written, whichever path writes it, and the chain never forks under concurrent writers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from app.ledger.chain import append_event, event_hash
from app.models import ConsentEvent
from app.models.enums import ConsentEventKind, ConsentMethod, LegalBasis
from tests.factories import make_world
from tests.ledger.helpers import behind_the_back, grant, ledger_head, verify, withdraw
from tests.queries import events_of_sender as events_of


def assert_linear(events: list[ConsentEvent]) -> None:
    """Each event names the one before it (by id) as its predecessor, and its hash is what
    its content and that predecessor give."""
    previous = None
    for event in events:
        assert event.prev_hash == previous, f"event {event.id} forks the chain"
        assert event.chain_hash == event_hash(event.prev_hash, event)
        previous = event.chain_hash


async def test_cr3_each_event_chains_to_the_previous_event_of_the_same_sender(runtime):
    shop = await make_world(runtime, slug="shop")
    school = await make_world(runtime, slug="school")
    await grant(runtime, shop.list_id, "taro@example.jp")
    await grant(runtime, school.list_id, "hanako@example.jp")
    await withdraw(runtime, shop.sender_id, "taro@example.jp")
    await grant(runtime, school.list_id, "jiro@example.jp")

    for world, kinds in ((shop, ["grant", "withdraw"]), (school, ["grant", "grant"])):
        events = await events_of(runtime, world.sender_id)
        assert [e.kind for e in events] == kinds
        assert events[0].prev_hash is None  # each sender's chain starts afresh
        assert_linear(events)
        assert await ledger_head(runtime, world.sender_id) == events[-1].chain_hash

    verdict = await verify(runtime)
    assert verdict.ok, verdict.summary()
    assert verdict.summary() == "ledger ok: 4 events, 2 senders"


async def test_cr3_the_hash_survives_the_round_trip_through_either_database(runtime):
    """What was hashed before the INSERT must hash the same when read back: JSON numbers that
    PostgreSQL's JSONB rewrites, Japanese text, timestamps falling on a whole second."""
    world = await make_world(runtime)
    await grant(
        runtime,
        world.list_id,
        "taro@example.jp",
        evidence={
            "received_on": "2026-10-01",
            "received_by": "営業部 田中",
            "document_ref": "名刺 BC-0042",
            "amounts": [1e16, 100.0, 0.1, -0.0, 2**60, 1.5e-7],
            "nested": {"b": True, "a": None, "z": {"x": "全角　スペース"}},
        },
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
    )
    [event] = await events_of(runtime, world.sender_id)
    assert event.evidence["amounts"][0] == 10**16
    assert event.chain_hash == event_hash(None, event)
    assert (await verify(runtime)).ok


async def test_cr3_events_appended_in_one_transaction_chain_in_the_order_they_were_appended(
    runtime,
):
    shop = await make_world(runtime, slug="shop")
    school = await make_world(runtime, slug="school")
    now = datetime.now(UTC)

    def event(sender_id: int, email: str, minutes: int) -> ConsentEvent:
        return ConsentEvent(
            kind=ConsentEventKind.GRANT,
            email=email,
            sender_id=sender_id,
            basis=LegalBasis.BUSINESS_RELATIONSHIP,
            method=ConsentMethod.ADMIN,
            occurred_at=now + timedelta(minutes=minutes),
            evidence={"transaction_ref": f"T-{minutes}", "transaction_date": "2026-10-01"},
            recorded_by="test",
        )

    async with runtime.sessionmaker() as session, session.begin():
        for appended in (
            event(shop.sender_id, "a@example.jp", 1),
            event(school.sender_id, "b@example.jp", 2),
            event(shop.sender_id, "c@example.jp", 3),
            event(shop.sender_id, "d@example.jp", 4),
        ):
            await append_event(session, appended)

    shop_events = await events_of(runtime, shop.sender_id)
    assert [e.email for e in shop_events] == ["a@example.jp", "c@example.jp", "d@example.jp"]
    assert_linear(shop_events)
    assert await ledger_head(runtime, shop.sender_id) == shop_events[-1].chain_hash
    assert_linear(await events_of(runtime, school.sender_id))
    assert (await verify(runtime)).ok


async def test_cr3_erasure_and_retention_bookkeeping_do_not_read_as_tampering(runtime):
    """DS-3 sets subscriber_id to NULL on erasure; CR-2 sets retain_until: neither is content."""
    world = await make_world(runtime)
    await grant(runtime, world.list_id, "taro@example.jp")
    await withdraw(runtime, world.sender_id, "taro@example.jp")
    await behind_the_back(
        runtime,
        "UPDATE consent_events SET subscriber_id = NULL, retain_until = :until",
        until=datetime(2029, 12, 1),
    )
    verdict = await verify(runtime)
    assert verdict.ok, verdict.summary()


async def test_cr3_concurrent_appends_for_one_sender_never_fork_the_chain(runtime):
    """Many requests recording consent for one sender at once (on PostgreSQL, truly in
    parallel): the chain stays one line and verifies."""
    world = await make_world(runtime)
    emails = [f"user{i:02d}@example.jp" for i in range(12)]
    await asyncio.gather(*(grant(runtime, world.list_id, email) for email in emails))

    events = await events_of(runtime, world.sender_id)
    assert sorted(e.email for e in events) == emails
    assert_linear(events)
    assert len({e.prev_hash for e in events}) == len(events)
    assert await ledger_head(runtime, world.sender_id) == events[-1].chain_hash
    assert (await verify(runtime)).ok


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_cr3_on_postgresql_a_second_append_waits_for_the_first_to_commit(runtime):
    """Two sessions append for the same sender in parallel: the second is held on the sender's
    row lock while the first is uncommitted, then chains onto the first's event (no fork).
    PostgreSQL only: on SQLite one connection per process serialises every writer already."""
    world = await make_world(runtime)
    first_session = runtime.sessionmaker()
    second_session = runtime.sessionmaker()
    try:
        first = ConsentEvent(
            kind=ConsentEventKind.GRANT,
            email="first@example.jp",
            sender_id=world.sender_id,
            basis=LegalBasis.OPT_IN,
            method=ConsentMethod.ADMIN,
            evidence={"source": "テスト"},
            recorded_by="test",
        )
        await append_event(first_session, first)  # holds the sender's row lock until commit

        second = ConsentEvent(
            kind=ConsentEventKind.GRANT,
            email="second@example.jp",
            sender_id=world.sender_id,
            basis=LegalBasis.OPT_IN,
            method=ConsentMethod.ADMIN,
            evidence={"source": "テスト"},
            recorded_by="test",
        )
        second_flush = asyncio.create_task(append_event(second_session, second))

        async def waiting_for_a_lock() -> int:
            async with runtime.engine.connect() as conn:
                return int(
                    await conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock'"
                        )
                    )
                    or 0
                )

        for _ in range(500):  # up to ten seconds for the second flush to reach the lock
            if await waiting_for_a_lock():
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the second append did not wait for the sender's row lock")
        assert not second_flush.done()

        await first_session.commit()
        await second_flush
        await second_session.commit()
    finally:
        await first_session.close()
        await second_session.close()

    events = await events_of(runtime, world.sender_id)
    assert [e.email for e in events] == ["first@example.jp", "second@example.jp"]
    assert events[1].prev_hash == events[0].chain_hash
    assert_linear(events)
    assert (await verify(runtime)).ok
