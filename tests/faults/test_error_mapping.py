"""Which database errors are "the service is unavailable" (503, retry) and which are ours (500,
with a traceback in the log): decided on the real errors each driver raises, never on mocks.

A database that cannot serve (restarting, unreachable, locked, full, read-only) is a 503 with
the API.md error body; a missing table, bad SQL or a broken constraint stays a 500 (STYLE 4:
unknown exceptions stay 500 and reach the log), so a deployment fault is never disguised as a
passing outage.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db import make_engine
from app.errors import Unavailable, database_unavailable
from app.models import Subscriber
from tests.conftest import BASE_URL
from tests.smtp import free_port

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


async def _error_of(runtime: Any, statement: str) -> DBAPIError:
    async with runtime.sessionmaker() as session:
        with pytest.raises(DBAPIError) as caught:
            await session.execute(text(statement))
    return caught.value


async def test_errors_in_our_own_sql_are_not_unavailability(runtime: Any, is_postgres: bool):
    """STYLE 4: a missing table, a syntax error, a broken constraint are faults to fix, not an
    outage to wait out: never classed as "unavailable" (on SQLite too, where the driver raises
    some of them as OperationalError)."""
    for statement in (
        "SELECT * FROM no_such_table",
        "SELEC 1",
        "INSERT INTO instance_secrets (name, value) SELECT name, value FROM instance_secrets",
    ):
        error = await _error_of(runtime, statement)
        assert database_unavailable(error) is None, (statement, error.orig)


@sqlite_only
async def test_a_missing_table_answers_500_not_503(
    app: Any, admin_key: str, runtime: Any, database_url: str
):
    """STYLE 4: an admin write that hits a table the migrations did not create answers 500 (the
    bug reaches the log), not a 503 inviting clients to retry forever; nothing is written."""
    await runtime.dispose()
    path = Path(database_url.removeprefix("sqlite+aiosqlite:///"))
    connection = sqlite3.connect(path)
    connection.execute("DROP TABLE audit_log")
    connection.close()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url=f"{BASE_URL}/api/v1",
        headers={"Authorization": f"Bearer {admin_key}"},
    ) as admin:
        response = await admin.post("/subscribers", json={"email": "taro@example.jp"})
    assert response.status_code == 500
    async with runtime.sessionmaker() as session:
        assert await session.get(Subscriber, 1) is None


@sqlite_only
async def test_sqlite_locked_and_read_only_are_unavailability(
    runtime: Any, database_url: str, tmp_path: Path
):
    """SQLite's "database is locked" (another writer held the lock past the busy timeout) and
    "attempt to write a readonly database" are 503s."""
    path = Path(database_url.removeprefix("sqlite+aiosqlite:///"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    impatient = make_engine(database_url, sqlite_busy_timeout=0.05)
    try:
        with pytest.raises(DBAPIError) as locked:
            async with impatient.connect() as conn:
                await conn.execute(text("DELETE FROM senders"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await impatient.dispose()
    assert locked.value.orig.sqlite_errorname == "SQLITE_BUSY"
    assert database_unavailable(locked.value) is Unavailable.BUSY

    read_only = make_engine(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    try:
        with pytest.raises(DBAPIError) as refused:
            async with read_only.connect() as conn:
                await conn.execute(text("DELETE FROM senders"))
    finally:
        await read_only.dispose()
    assert database_unavailable(refused.value) is Unavailable.READ_ONLY


@postgres_only
async def test_postgres_refused_and_terminated_connections_are_unavailability(
    runtime: Any, database_url: str
):
    """PostgreSQL not listening (connection refused) and a session terminated under us (what a
    restart does to every open connection) are 503s, and the pool recovers from the latter."""
    url = runtime.engine.url.set(port=free_port()).render_as_string(hide_password=False)
    nobody_home = make_engine(url)
    try:
        with pytest.raises(DBAPIError) as refused:
            async with nobody_home.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await nobody_home.dispose()
    assert database_unavailable(refused.value) is Unavailable.UNREACHABLE

    async with runtime.engine.connect() as conn:
        pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        conninfo = runtime.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as killer:
            await killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(DBAPIError) as terminated:
            await conn.execute(text("SELECT 1"))
    assert database_unavailable(terminated.value) is Unavailable.UNREACHABLE
    async with runtime.engine.connect() as conn:
        assert await conn.scalar(text("SELECT 1")) == 1
