"""SQLite runs on the event loop's thread (app/sqlite_inline.py). What a user must not notice:
while another process holds the write lock, the service keeps answering (the wait is an
asyncio sleep, not a blocked loop) and the write goes through as soon as the lock is free; a
lock held past the busy timeout is SQLITE_BUSY, which the API answers 503 (tests/faults)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import make_engine
from app.models import Sender

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
async def test_waiting_for_another_process_lock_leaves_the_loop_free(
    runtime: Any, database_url: str
):
    path = Path(database_url.removeprefix("sqlite+aiosqlite:///"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    engine = make_engine(database_url)
    try:

        async def write() -> None:
            async with engine.begin() as conn:
                await conn.execute(
                    Sender.__table__.insert().values(
                        name="株式会社承諾",
                        postal_address="東京都千代田区千代田1-1",
                        contact_email="support@shodaku.example",
                        from_email="news@shodaku.example",
                    )
                )

        writing = asyncio.create_task(write())
        # This coroutine runs on while the write waits. Were the wait a blocking call, the loop
        # would come back here only once the write had finished (or failed at the busy timeout).
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not writing.done()  # still waiting for the lock…
        holder.execute("ROLLBACK")
        # …and it goes through once the lock is free (the timeout only keeps a bug from
        # hanging the suite).
        await asyncio.wait_for(writing, timeout=30)
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(Sender.__table__)) == 1
    finally:
        holder.close()
        await engine.dispose()


# What SQLAlchemy's aiosqlite dialect and its asyncio connector touch on the driver's
# connection and cursor, which app/sqlite_inline.py imitates. Read from their source, so that an
# upgrade that starts using anything else fails here, loudly, rather than in production.
DIALECT_USES_ON_CONNECTION = {
    "_conn",
    "_connection",
    "_tx",
    "close",
    "commit",
    "create_function",
    "cursor",
    "isolation_level",
    "rollback",
    "stop",
}
DIALECT_USES_ON_CURSOR = {
    "__aiter__",
    "arraysize",
    "close",
    "description",
    "execute",
    "executemany",
    "fetchall",
    "fetchmany",
    "fetchone",
    "lastrowid",
    "nextset",
    "rowcount",
    "setinputsizes",
}
# Names the regex also finds that belong to SQLAlchemy's own adapter objects, not the driver's.
ADAPTER_OWN = {"_execute_mutex", "_handle_exception", "terminate"}


def test_the_shim_offers_everything_the_sqlalchemy_dialect_uses() -> None:
    import inspect
    import re

    import sqlalchemy.connectors.asyncio as connector
    import sqlalchemy.dialects.sqlite.aiosqlite as dialect

    from app.sqlite_inline import InlineConnection, InlineCursor

    source = inspect.getsource(dialect) + inspect.getsource(connector)
    on_connection = set(re.findall(r"_connection\.(\w+)", source)) - ADAPTER_OWN
    on_cursor = set(re.findall(r"_cursor\.(\w+)", source))
    assert on_connection == DIALECT_USES_ON_CONNECTION, (
        "SQLAlchemy's aiosqlite dialect changed what it calls on the driver connection: "
        "check app/sqlite_inline.py against it"
    )
    assert on_cursor == DIALECT_USES_ON_CURSOR, (
        "SQLAlchemy's asyncio connector changed what it calls on the driver cursor: "
        "check app/sqlite_inline.py against it"
    )
    for name in on_connection:
        assert hasattr(InlineConnection, name) or name in {"_connection", "_tx"}, name
    for name in on_cursor:
        assert hasattr(InlineCursor, name), name


@sqlite_only
async def test_every_dialect_path_works_through_the_shim(database_url: str, runtime: Any) -> None:
    """Isolation level (queued on ``_tx``), a server-side cursor read in batches, executemany,
    rowcount and lastrowid, commit and rollback, a user function, and an invalidated
    connection (``stop``): each path the dialect drives, driven once."""
    from sqlalchemy import event, insert, text

    engine = make_engine(database_url)

    @event.listens_for(engine.sync_engine, "connect")
    def _function(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("twice", 1, lambda v: v * 2)

    row = {
        "name": "株式会社承諾",
        "postal_address": "東京都千代田区千代田1-1",
        "contact_email": "support@shodaku.example",
        "from_email": "news@shodaku.example",
    }
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="READ UNCOMMITTED")
            assert await conn.get_isolation_level() == "READ UNCOMMITTED"
            await conn.execution_options(isolation_level="AUTOCOMMIT")  # through ``_tx``
            await conn.execution_options(isolation_level="SERIALIZABLE")
            assert await conn.get_isolation_level() == "SERIALIZABLE"
            result = await conn.execute(insert(Sender.__table__).values(**row))
            assert result.inserted_primary_key is not None
            await conn.execute(insert(Sender.__table__), [row, row, row])
            await conn.rollback()
            async with conn.begin():
                await conn.execute(insert(Sender.__table__), [row, row])
            updated = await conn.execute(text("UPDATE senders SET name = name"))
            assert updated.rowcount == 2
            await conn.commit()
            assert await conn.scalar(text("SELECT twice(21)")) == 42
            streamed = await conn.stream(
                select(Sender.__table__.c.id).execution_options(yield_per=1)
            )
            assert len([r async for r in streamed]) == 2
            await conn.invalidate()
        async with engine.connect() as conn:  # a new connection after the invalidated one
            assert await conn.scalar(select(func.count()).select_from(Sender.__table__)) == 2
    finally:
        await engine.dispose()
