"""The purge as an operator runs it: ``shodaku purge [--dry-run]``, the in-process daily purge
on SQLite, and what it removes besides consent events: imports past their three years with
their items (DS-4) and old finished outbox rows (CR-2)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import select, update

from app.models import ImportItem, ListImport, OutboxMessage
from app.models.enums import OutboxStatus
from app.privacy import retention
from app.privacy.retention import purge, run_periodic_purge
from tests.factories import CONSENT_WORDING, consent
from tests.privacy.conftest import tombstones, utc, world_with
from tests.queries import count, events_of

ROOT = Path(__file__).resolve().parents[2]
SHODAKU = Path(sys.executable).parent / "shodaku"
if not SHODAKU.exists():  # pragma: no cover - a test run outside the project's venv
    SHODAKU = ROOT / ".venv" / "bin" / "shodaku"


async def _stopped_person(admin: Any, runtime: Any, email: str) -> None:
    """A person who consented and withdrew in 2020, under the 31-day policy: by the real clock
    (which a subprocess reads) the hold has long passed."""
    with time_machine.travel(utc("2020-01-10T03:00"), tick=False):
        world = await world_with(runtime, slug=email.split("@")[0], retention_days=31)
        await consent(runtime, world.list_id, email)
        response = await admin.post(
            "/optouts", json={"email": email, "sender_id": world.sender_id, "channel": "email"}
        )
    assert response.status_code == 201


def _run_purge(database_url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHODAKU_")}
    env.update(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=database_url)
    return subprocess.run(
        [str(SHODAKU), "purge", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cr2_shodaku_purge_dry_run_prints_counts_and_changes_nothing(
    admin, runtime, database_url, tmp_path
):
    """CR-2: ``shodaku purge --dry-run`` on a migrated database prints what it would remove
    and exits 0 with every row in place; ``shodaku purge`` then removes exactly that."""
    await _stopped_person(admin, runtime, "taro@example.jp")

    dry = _run_purge(database_url, "--dry-run", cwd=tmp_path)

    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was changed" in dry.stdout
    assert "consent events past their hold would remove: 2" in dry.stdout
    assert "ledger tombstones that would be written: 2" in dry.stdout
    assert "imports past their 3 years would remove: 0 (with 0 import items)" in dry.stdout
    assert "taro" not in dry.stdout + dry.stderr
    assert len(await events_of(runtime, "taro@example.jp")) == 2
    assert await tombstones(runtime) == []

    real = _run_purge(database_url, cwd=tmp_path)
    assert real.returncode == 0, real.stderr
    assert "consent events past their hold removed: 2" in real.stdout
    assert await events_of(runtime, "taro@example.jp") == []
    assert len(await tombstones(runtime)) == 2


def test_cr2_shodaku_purge_on_a_database_without_schema_fails_cleanly(tmp_path):
    """A missing or unmigrated database: one sentence on stderr saying what to run, exit code 2,
    no traceback, and no database file left behind."""
    result = _run_purge(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("shodaku: there is no database at")
    assert "shodaku migrate" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "empty.db").exists()


async def test_ds4_imports_are_purged_with_their_items_after_three_years(runtime, clock):
    """DS-4: an import's acquisition record and the addresses it brought are kept until its
    retain_until (three years) and removed, items first, after it."""
    world = await world_with(runtime)
    async with runtime.sessionmaker() as session, session.begin():
        for days_kept in (1095, 2000):
            source = ListImport(
                list_id=world.list_id,
                provider_name="株式会社名簿提供",
                provider_address="東京都渋谷区",
                provider_representative="名簿太郎",
                acquisition_circumstances="本人から取得",
                received_at=utc("2027-01-01T00:00"),
                items={"fields": ["email"]},
                recorded_by="api_key:1",
                retain_until=utc("2027-01-10T03:00")
                + __import__("datetime").timedelta(days=days_kept),
            )
            session.add(source)
            await session.flush()
            session.add_all(
                ImportItem(
                    import_id=source.id,
                    row_number=i + 2,
                    email=f"u{i}@example.jp",
                    outcome="unconsented",
                )
                for i in range(3)
            )

    clock.move_to(utc("2030-01-09T03:00"))  # the day before the first import's hold ends
    report = await purge(runtime.sessionmaker, dry_run=False)
    assert (report.imports, report.import_items) == (0, 0)
    clock.move_to(utc("2030-01-11T03:00"))
    report = await purge(runtime.sessionmaker, dry_run=False)
    assert (report.imports, report.import_items) == (1, 3)
    assert await count(runtime, ListImport) == 1
    assert await count(runtime, ImportItem) == 3


async def test_cr2_finished_outbox_rows_go_after_30_days_pending_ones_stay(
    client, runtime, clock, outbox
):
    """Confirmation mails already sent, failed or dropped are removed 30 days on; one still
    waiting to be sent stays whatever its age."""
    await world_with(runtime)
    for email in ("a@example.jp", "b@example.jp"):
        response = await client.post(
            "/subscribe/news",
            json={"email": email, "consent": True, "consent_text": CONSENT_WORDING},
        )
        assert response.status_code == 202
    async with runtime.sessionmaker() as session, session.begin():
        first = await session.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id))
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == first)
            .values(status=OutboxStatus.SENT.value)
        )

    clock.move_to(utc("2027-02-08T03:00"))  # 29 days on
    assert (await purge(runtime.sessionmaker, dry_run=False)).outbox_messages == 0
    clock.move_to(utc("2027-02-10T03:00"))  # 31 days on
    assert (await purge(runtime.sessionmaker, dry_run=False)).outbox_messages == 1
    async with runtime.sessionmaker() as session:
        left = (await session.scalars(select(OutboxMessage.status))).all()
    assert left == ["pending"]


async def test_cr2_the_in_process_purge_runs_and_survives_a_failure(
    admin, runtime, monkeypatch, caplog
):
    """CR-2 on SQLite: the periodic purge runs by itself; a failed run is logged and the next
    one still purges."""
    await _stopped_person(admin, runtime, "taro@example.jp")
    real_purge = retention.purge
    calls: list[str] = []

    async def flaky_purge(*args: Any, **kwargs: Any) -> Any:
        calls.append("run")
        if len(calls) == 1:
            raise RuntimeError("disk full")
        return await real_purge(*args, **kwargs)

    monkeypatch.setattr(retention, "purge", flaky_purge)
    caplog.set_level(logging.ERROR, logger="app.background")
    task = asyncio.create_task(
        run_periodic_purge(runtime, first_delay=0, interval=3600, retry_after=0.01)
    )
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while await events_of(runtime, "taro@example.jp"):
            assert asyncio.get_running_loop().time() < deadline, "the purge did not run"
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(calls) == 2
    assert "retention purge failed" in caplog.text
    assert len(await tombstones(runtime)) == 2
