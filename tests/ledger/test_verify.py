"""CR-3: ``shodaku verify-ledger`` recomputes every sender's chain and names the first event
that was edited, removed or slipped in behind the application's back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.ledger import service as ledger_service
from tests.factories import make_world
from tests.ledger.helpers import behind_the_back, grant, verify, withdraw
from tests.queries import events_of_sender as events_of

ROOT = Path(__file__).resolve().parents[2]
SHODAKU = Path(sys.executable).parent / "shodaku"
if not SHODAKU.exists():  # pragma: no cover - a test run outside the project's venv
    SHODAKU = ROOT / ".venv" / "bin" / "shodaku"


async def two_senders(runtime):
    """A shop with four events (grant, grant, grant again for taro, opt-out) and a school with
    one. Taro's first grant is the one nothing else refers to any more."""
    shop = await make_world(runtime, slug="shop")
    school = await make_world(runtime, slug="school")
    await grant(runtime, shop.list_id, "taro@example.jp")
    await grant(runtime, shop.list_id, "hanako@example.jp")
    await grant(runtime, school.list_id, "jiro@example.jp")
    await grant(runtime, shop.list_id, "taro@example.jp")
    await withdraw(runtime, shop.sender_id, "hanako@example.jp")
    return shop, school


async def test_cr3_an_intact_ledger_verifies(runtime):
    await two_senders(runtime)
    verdict = await verify(runtime)
    assert verdict.ok
    assert verdict.summary() == "ledger ok: 5 events, 2 senders"


async def test_cr3_evidence_edited_behind_the_applications_back_is_caught_and_named(runtime):
    shop, _ = await two_senders(runtime)
    events = await events_of(runtime, shop.sender_id)
    edited = events[1]
    await behind_the_back(
        runtime,
        "UPDATE consent_events SET evidence = :evidence WHERE id = :id",
        evidence='{"received_on": "2020-01-01", "received_by": "x", "document_ref": "forged"}',
        id=edited.id,
    )
    verdict = await verify(runtime)
    assert not verdict.ok
    assert verdict.summary() == (
        f"ledger broken: event {edited.id} (sender {shop.sender_id}): "
        "content does not match its hash"
    )


async def test_cr3_an_address_swapped_behind_the_applications_back_is_caught(runtime):
    shop, _ = await two_senders(runtime)
    withdrawal = (await events_of(runtime, shop.sender_id))[-1]
    await behind_the_back(
        runtime,
        "UPDATE consent_events SET email = 'someone.else@example.jp' WHERE id = :id",
        id=withdrawal.id,
    )
    verdict = await verify(runtime)
    assert verdict.broken is not None
    assert verdict.broken.event_id == withdrawal.id
    assert str(verdict.broken) == (
        f"event {withdrawal.id} (sender {shop.sender_id}): content does not match its hash"
    )


async def test_cr3_an_edit_that_also_rewrites_the_events_own_hash_breaks_the_next_link(
    runtime,
):
    """Recomputing the edited event's hash is not enough: the next event names the old one."""
    shop, _ = await two_senders(runtime)
    events = await events_of(runtime, shop.sender_id)
    await behind_the_back(
        runtime,
        "UPDATE consent_events SET chain_hash = :forged WHERE id = :id",
        forged="0" * 64,
        id=events[1].id,
    )
    verdict = await verify(runtime)
    assert verdict.broken is not None
    assert verdict.broken.event_id == events[1].id
    await behind_the_back(
        runtime,
        "UPDATE consent_events SET chain_hash = :real WHERE id = :id",
        real=events[1].chain_hash,
        id=events[1].id,
    )
    assert (await verify(runtime)).ok


async def test_cr3_a_deleted_event_without_a_tombstone_is_caught(runtime):
    shop, _ = await two_senders(runtime)
    events = await events_of(runtime, shop.sender_id)
    taro_first_grant = events[0]
    await behind_the_back(
        runtime, "DELETE FROM consent_events WHERE id = :id", id=taro_first_grant.id
    )
    verdict = await verify(runtime)
    assert verdict.summary() == (
        f"ledger broken: event {events[1].id} (sender {shop.sender_id}): "
        "does not start the chain (an event before it is missing)"
    )


async def test_cr3_a_deleted_event_in_the_middle_is_caught_at_the_next_one(runtime):
    shop = await make_world(runtime)
    first = await grant(runtime, shop.list_id, "hanako@example.jp")
    middle = await grant(runtime, shop.list_id, "taro@example.jp")
    await grant(runtime, shop.list_id, "taro@example.jp")  # taro's first grant is now unused
    await grant(runtime, shop.list_id, "jiro@example.jp")
    await behind_the_back(runtime, "DELETE FROM consent_events WHERE id = :id", id=middle)
    verdict = await verify(runtime)
    assert verdict.broken is not None
    assert (
        str(verdict.broken)
        == f"event {middle + 1} (sender {shop.sender_id}): does not follow {first}"
    )


async def test_cr3_a_deleted_last_event_is_caught_by_the_ledger_head(runtime):
    shop = await make_world(runtime)
    await grant(runtime, shop.list_id, "hanako@example.jp")
    kept = await grant(runtime, shop.list_id, "taro@example.jp")
    removed = (await withdraw(runtime, shop.sender_id, "taro@example.jp"))[0]
    await behind_the_back(
        runtime,
        "UPDATE suppressions SET consent_event_id = NULL",
        "DELETE FROM consent_events WHERE id = :id",
        id=removed,
    )
    verdict = await verify(runtime)
    assert verdict.broken is not None
    assert verdict.broken.event_id is None
    assert str(verdict.broken).startswith(
        f"sender {shop.sender_id}: its chain ends at event {kept}, which is not its ledger head"
    )


async def test_cr3_an_event_slipped_in_around_the_ledger_is_caught(runtime):
    shop, _ = await two_senders(runtime)
    await behind_the_back(
        runtime,
        "INSERT INTO consent_events (kind, email, sender_id, list_id, basis, method, "
        "occurred_at, evidence, recorded_by, created_at) VALUES ('grant', 'late@example.jp', "
        ":sender, :list, 'opt_in', 'admin', '2026-11-01 00:00:00', '{}', 'x', "
        "'2026-11-01 00:00:00')",
        sender=shop.sender_id,
        list=shop.list_id,
    )
    verdict = await verify(runtime)
    assert verdict.broken is not None
    assert verdict.broken.sender_id == shop.sender_id
    assert verdict.broken.event_id == max(e.id for e in await events_of(runtime, shop.sender_id))


async def test_cr3_a_purged_event_with_its_tombstone_still_verifies(runtime):
    """CR-2 meets CR-3: the purge replaces an event past its hold by a tombstone carrying its
    hashes; the chain verifies across the gap."""
    shop, _ = await two_senders(runtime)
    purged = (await events_of(runtime, shop.sender_id))[0]  # taro's unused first grant
    await behind_the_back(
        runtime,
        "INSERT INTO ledger_tombstones (event_id, sender_id, prev_hash, chain_hash, purged_at) "
        "VALUES (:id, :sender, :prev, :chain, '2029-11-01 00:00:00')",
        "DELETE FROM consent_events WHERE id = :id",
        id=purged.id,
        sender=shop.sender_id,
        prev=purged.prev_hash,
        chain=purged.chain_hash,
    )
    verdict = await verify(runtime)
    assert verdict.ok, verdict.summary()
    assert verdict.summary() == ("ledger ok: 5 events (1 purged, verified by tombstone), 2 senders")


async def test_cr3_a_tombstone_with_made_up_hashes_is_caught(runtime):
    shop, _ = await two_senders(runtime)
    events = await events_of(runtime, shop.sender_id)
    await behind_the_back(
        runtime,
        "INSERT INTO ledger_tombstones (event_id, sender_id, prev_hash, chain_hash, purged_at) "
        "VALUES (:id, :sender, :prev, :chain, '2029-11-01 00:00:00')",
        "DELETE FROM consent_events WHERE id = :id",
        id=events[0].id,
        sender=shop.sender_id,
        prev=None,
        chain="f" * 64,
    )
    verdict = await verify(runtime)
    assert str(verdict.broken) == (
        f"event {events[1].id} (sender {shop.sender_id}): does not follow {events[0].id}"
    )


async def test_cr3_verification_reads_in_batches_and_keeps_walking(runtime, monkeypatch):
    """Bounded memory: the walk reads a few events at a time; tombstones and events from
    different batches still meet in id order."""
    monkeypatch.setattr(ledger_service, "VERIFY_BATCH", 2)
    shop, _ = await two_senders(runtime)
    for i in range(5):
        await grant(runtime, shop.list_id, f"user{i}@example.jp")
    events = await events_of(runtime, shop.sender_id)
    for purged in (events[0], events[5]):
        await behind_the_back(
            runtime,
            "INSERT INTO ledger_tombstones (event_id, sender_id, prev_hash, chain_hash, "
            "purged_at) VALUES (:id, :sender, :prev, :chain, '2029-11-01 00:00:00')",
            "UPDATE subscriptions SET grant_event_id = NULL WHERE grant_event_id = :id",
            "DELETE FROM consent_events WHERE id = :id",
            id=purged.id,
            sender=shop.sender_id,
            prev=purged.prev_hash,
            chain=purged.chain_hash,
        )
    verdict = await verify(runtime)
    assert verdict.ok, verdict.summary()
    assert (verdict.events, verdict.purged) == (8, 2)

    await behind_the_back(
        runtime,
        "UPDATE consent_events SET note = 'edited' WHERE id = :id",
        id=events[7].id,
    )
    assert (await verify(runtime)).broken.event_id == events[7].id


def _run_verify(url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHODAKU_")}
    env.update(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=url)
    return subprocess.run(
        [str(SHODAKU), "verify-ledger"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cr3_shodaku_verify_ledger_exits_0_then_1_naming_the_edited_event(
    runtime, settings, tmp_path
):
    """The operator's command on a migrated database: ok and exit 0, then, after an edit
    behind the application's back, exit 1 naming the event."""
    shop, _ = await two_senders(runtime)
    ok = _run_verify(settings.database_url, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "ledger ok: 5 events, 2 senders"

    events = await events_of(runtime, shop.sender_id)
    await behind_the_back(
        runtime,
        "UPDATE consent_events SET occurred_at = '2026-01-01 00:00:00' WHERE id = :id",
        id=events[2].id,
    )
    broken = _run_verify(settings.database_url, tmp_path)
    assert broken.returncode == 1, broken.stderr
    assert broken.stdout.strip() == (
        f"ledger broken: event {events[2].id} (sender {shop.sender_id}): "
        "content does not match its hash"
    )


def test_cr3_shodaku_verify_ledger_on_a_database_never_migrated_says_so(tmp_path):
    result = _run_verify(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", tmp_path)
    assert result.returncode == 2
    assert "shodaku migrate" in result.stderr
    assert "Traceback" not in result.stderr
