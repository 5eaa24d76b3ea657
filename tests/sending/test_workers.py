"""`shodaku worker` as real processes: killed mid-campaign and restarted, and two of them
sharing one campaign on PostgreSQL through procrastinate."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from app.models import Delivery
from tests.factories import consent_many, make_world, start

ROOT = Path(__file__).resolve().parents[2]
SHODAKU = str(Path(sys.executable).with_name("shodaku"))


def worker_env(settings: Any, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SHODAKU_ENV": "dev",
        "SHODAKU_DATABASE_URL": settings.database_url,
        "SHODAKU_SECRET_KEYS": ",".join(settings.secret_keys),
        "SHODAKU_BASE_URL": settings.base_url,
        "SHODAKU_SMTP_HOST": settings.smtp_host,
        "SHODAKU_SMTP_PORT": str(settings.smtp_port),
        "SHODAKU_SEND_CONCURRENCY": "4",
        "SHODAKU_SEND_BATCH_SIZE": "20",
        "SHODAKU_SEND_LEASE_SECONDS": "10",
        **extra,
    }
    return env


def spawn(settings: Any, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [SHODAKU, "worker"],
        cwd=ROOT,
        env=worker_env(settings, **extra),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def wait_until(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_worker_killed_mid_campaign_loses_nobody(
    admin, runtime, settings, smtp_server, tmp_path, database_url
):
    """A worker killed with SIGKILL mid-campaign and restarted: every consented recipient gets
    the message; duplicates only among the messages in flight at the kill."""
    world = await make_world(runtime)
    emails = await consent_many(runtime, world.list_id, 80)

    def slow(_rcpt: str) -> None:
        time.sleep(0.02)

    smtp_server.behaviour.on_data = slow
    campaign = await start(admin, world)
    log = tmp_path / "worker.log"
    first = spawn(settings, log)
    try:
        await wait_until(lambda: _true(smtp_server.count() >= 20), 60, "the first messages")
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = smtp_server.count()
    assert at_kill < len(emails), "the worker finished before it could be killed"

    second = spawn(settings, log)
    try:

        async def done() -> bool:
            body = (await admin.get(f"/campaigns/{campaign['id']}")).json()
            return bool(body["status"] == "sent")

        await wait_until(done, 90, "the campaign to finish after the restart")
    finally:
        stop(second)

    counts = Counter(r.rcpt_tos[0] for r in smtp_server.received)
    assert set(counts) == set(emails), "somebody consented was never mailed"
    duplicated = {address: n for address, n in counts.items() if n > 1}
    duplicates = sum(n - 1 for n in duplicated.values())
    report = f"killed after {at_kill} messages; {duplicates} duplicate(s): {duplicated}"
    print(report)  # the figure issue 5 asks to report (pytest -rP shows it)
    # Only what was inside an SMTP transaction at the kill can go twice: one chunk at most.
    assert duplicates <= 4, report + "\n" + log.read_text()[-3000:]
    stats = (await admin.get(f"/campaigns/{campaign['id']}")).json()["stats"]
    assert stats["sent"] == len(emails)


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_postgres_workers_share_a_campaign_and_mail_nobody_twice(
    admin, runtime, settings, smtp_server, tmp_path, database_url
):
    """Two `shodaku worker` processes on PostgreSQL, procrastinate dispatching: both take part,
    every recipient gets exactly one message."""
    world = await make_world(runtime)
    emails = await consent_many(runtime, world.list_id, 240)

    # Every message takes the (single-threaded) server 10 ms, so the campaign lasts seconds:
    # long enough for the second worker to be claiming before the first has taken everything,
    # even on a loaded machine.
    def slow(_rcpt: str) -> None:
        time.sleep(0.01)

    smtp_server.behaviour.on_data = slow
    log = tmp_path / "workers.log"
    workers = [spawn(settings, log, SHODAKU_SEND_BATCH_SIZE="10") for _ in range(2)]
    try:

        async def both_registered() -> bool:
            async with runtime.sessionmaker() as session:
                n = await session.scalar(text("SELECT count(*) FROM procrastinate_workers"))
            return bool(n and n >= 2)

        await wait_until(both_registered, 60, "both workers to register")
        campaign = await start(admin, world)

        async def done() -> bool:
            body = (await admin.get(f"/campaigns/{campaign['id']}")).json()
            return bool(body["status"] == "sent")

        await wait_until(done, 120, "the campaign to finish")
    finally:
        for worker in workers:
            stop(worker)

    counts = Counter(r.rcpt_tos[0] for r in smtp_server.received)
    assert set(counts) == set(emails), log.read_text()[-3000:]
    assert max(counts.values()) == 1
    async with runtime.sessionmaker() as session:
        claimed_by = set((await session.scalars(select(Delivery.claimed_by))).all())
    assert len(claimed_by) == 2, f"only {claimed_by} sent"
