"""Issue 5, Faults: the SQLite file read-only, or the disk full. Every write answers 503 with the
API.md error body (a clear error, never a 500), and nothing is half-written (STYLE 2, CR-1: a
signup's consent event, subscription and confirmation outbox row commit together or not at all).
An opt-out that cannot be recorded is never answered 200 (SG-2).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from app.models import AuditLog, ConsentEvent, OutboxMessage, Subscriber, Subscription
from app.models.enums import ConsentEventKind
from tests.factories import consent, make_world
from tests.faults.sending import wait_until

ROOT = Path(__file__).resolve().parents[2]
WORDING = "承諾ニュースを受け取ることに同意します(配信者: 株式会社承諾)"
# What lets root write through any file mode; without them the mode binds root too.
PRIVILEGES = "-dac_override,-dac_read_search,-fowner,-linux_immutable"

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _db_path(database_url: str) -> Path:
    return Path(database_url.removeprefix("sqlite+aiosqlite:///"))


def _dump(path: Path) -> list[str]:
    """Every row of every table, as SQL: equal dumps, equal databases. Read through a normal
    connection: being the last to close, it folds the WAL into the file and removes it."""
    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def _unprivileged(argv: list[str]) -> list[str] | None:
    """``argv`` run so that file modes bind it, or None if that cannot be arranged here."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--bounding-set", PRIVILEGES, "--", *argv]


def _signup(email: str) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/subscribe/news",
        "json": {"email": email, "consent": True, "consent_text": WORDING},
    }


def _assert_unavailable(answer: dict[str, Any], door: str) -> None:
    assert answer["status"] == 503, (door, answer)
    assert answer["body"]["error"] == "ServiceUnavailable", (door, answer)
    assert answer["retry_after"], (door, answer)


@pytest.fixture
def restore_modes(database_url: str) -> Iterator[list[Path]]:
    """Paths whose mode the test changes; put back afterwards so that cleanup can remove them."""
    changed: list[Path] = []
    yield changed
    for path in changed:
        if path.exists():
            path.chmod(stat.S_IRWXU if path.is_dir() else stat.S_IRUSR | stat.S_IWUSR)


@sqlite_only
@pytest.mark.parametrize("read_only", ["file", "directory"])
async def test_read_only_database_refuses_writes_with_503_and_writes_nothing(
    admin: Any,
    admin_key: str,
    runtime: Any,
    database_url: str,
    read_only: str,
    restore_modes: list[Path],
) -> None:
    """Issue 5 / CR-1, SG-2: the SQLite file (or its whole directory) read-only for the process
    serving: signups, admin writes and one-click opt-outs answer 503 ServiceUnavailable with the
    error body, never 500 nor a 200 that recorded nothing; the file is byte-for-byte unchanged
    in content. ``file``: reads still work; ``directory`` (a read-only volume): SQLite cannot even
    create its WAL index, so every request, /healthz included, is a 503."""
    world = await make_world(runtime)
    subscriber_id = await consent(runtime, world.list_id, "hanako@example.jp")
    hasher = await runtime.hasher()
    token = runtime.signer.unsubscribe_token(
        subscriber_id, world.list_id, hasher("hanako@example.jp")
    )
    await runtime.dispose()  # the last connection checkpoints the WAL into the file
    path = _db_path(database_url)
    before = _dump(path)

    sidecars = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    assert not any(p.exists() for p in sidecars), "the WAL was not folded into the file"
    path.chmod(stat.S_IRUSR)
    restore_modes.append(path)
    if read_only == "directory":
        path.parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
        restore_modes.append(path.parent)

    argv = _unprivileged([sys.executable, "-m", "tests.faults.readonly_probe", str(path)])
    if argv is None:
        pytest.skip("running as root without setpriv: cannot make the file read-only for us")
    bearer = {"Authorization": f"Bearer {admin_key}"}
    requests = [
        _signup("new@example.jp"),
        {
            "method": "POST",
            "path": "/api/v1/subscribers",
            "headers": bearer,
            "json": {"email": "admin-made@example.jp"},
        },
        {
            "method": "POST",
            "path": f"/unsubscribe/{token}",
            "data": {"List-Unsubscribe": "One-Click"},
        },
        {"method": "GET", "path": "/healthz"},
        {"method": "GET", "path": f"/api/v1/lists/{world.list_id}", "headers": bearer},
    ]
    child = await asyncio.to_thread(
        subprocess.run,
        argv,
        input=json.dumps({"requests": requests}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout)
    assert report["write_denied"], "the child could still write the file: the test proves nothing"
    signup, admin_write, optout, health, read = report["answers"]
    _assert_unavailable(signup, "POST /subscribe")
    _assert_unavailable(admin_write, "POST /api/v1/subscribers")
    _assert_unavailable(optout, "POST /unsubscribe one-click")
    assert "read-only" in signup["body"]["detail"] or read_only == "directory", signup
    if read_only == "file":
        assert health["status"] == 200, health
        assert read["status"] == 200, read
    else:
        _assert_unavailable(health, "GET /healthz")
        _assert_unavailable(read, "GET /api/v1/lists/{id}")

    for path_ in restore_modes:
        path_.chmod(stat.S_IRWXU if path_.is_dir() else stat.S_IRUSR | stat.S_IWUSR)
    assert _dump(path) == before, "a refused request left something in the database"
    # Writable again, the same opt-out goes through: the failure was the file, nothing else.
    response = await admin.post(
        f"https://news.example.test/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200


@sqlite_only
async def test_disk_full_mid_signups_answers_503_and_half_writes_nothing(
    client: Any, admin: Any, runtime: Any, database_url: str
) -> None:
    """Issue 5 / CR-1: the disk fills up while signups come in (SQLite's max_page_count stands
    in for the disk: past it SQLite fails with SQLITE_FULL, "database or disk is full", exactly
    as on ENOSPC). Each signup is answered 202 and whole, or 503 ServiceUnavailable and absent;
    the same holds for admin writes and their audit rows (DS-6); once there is room again, the
    refused signup goes through."""
    await make_world(runtime)
    runtime.settings.signup_limit_per_ip = 0  # many signups from one client, on purpose
    await runtime.dispose()
    path = _db_path(database_url)
    connection = sqlite3.connect(path)
    connection.execute("VACUUM")  # no free pages left over from the migrations
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.close()

    def disk_full(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count = {int(pages)}")
        cursor.close()

    sync_engine = runtime.engine.sync_engine
    event.listen(sync_engine, "connect", disk_full)
    try:
        accepted, refused = [], None
        for i in range(400):
            email = f"signup{i:03d}@example.jp"
            response = await client.post(
                "/subscribe/news",
                json={"email": email, "consent": True, "consent_text": WORDING},
            )
            if response.status_code == 503:
                refused = (email, response)
                break
            assert response.status_code == 202, response.text
            accepted.append(email)
        assert refused is not None, "the database never filled up"
        email, response = refused
        assert response.json()["error"] == "ServiceUnavailable", response.text
        assert "space" in response.json()["detail"], response.text
        assert response.headers["retry-after"]

        created = []
        for i in range(400):
            response = await admin.post("/subscribers", json={"email": f"admin{i:03d}@example.jp"})
            if response.status_code == 503:
                assert response.json()["error"] == "ServiceUnavailable", response.text
                break
            assert response.status_code == 201, response.text
            created.append(response.json()["id"])
        else:
            raise AssertionError("admin writes never hit the full disk")
    finally:
        event.remove(sync_engine, "connect", disk_full)
        await runtime.dispose()

    async with runtime.sessionmaker() as session:
        signups = (
            await session.scalars(select(Subscriber.email).where(Subscriber.email.like("signup%")))
        ).all()
        grants = await session.scalar(
            select(func.count())
            .select_from(ConsentEvent)
            .where(ConsentEvent.kind == ConsentEventKind.GRANT)
        )
        subscriptions = await session.scalar(select(func.count()).select_from(Subscription))
        outbox = await session.scalar(select(func.count()).select_from(OutboxMessage))
        audited = await session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "subscriber.create")
        )
        admin_made = await session.scalar(
            select(func.count()).select_from(Subscriber).where(Subscriber.email.like("admin%"))
        )
    assert sorted(signups) == sorted(accepted), "a refused signup left a subscriber"
    assert grants == subscriptions == outbox == len(accepted), (grants, subscriptions, outbox)
    assert admin_made == audited == len(created), (admin_made, audited)

    # Room again (an operator freed the disk): the refused person's retry is whole.
    response = await client.post(
        "/subscribe/news", json={"email": email, "consent": True, "consent_text": WORDING}
    )
    assert response.status_code == 202, response.text

    async def recorded() -> bool:
        async with runtime.sessionmaker() as session:
            n = await session.scalar(
                select(func.count()).select_from(ConsentEvent).where(ConsentEvent.email == email)
            )
        return n == 1

    await wait_until(recorded, 5, "the retried signup to be recorded")
