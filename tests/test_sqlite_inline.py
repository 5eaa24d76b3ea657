"""SQLite runs on the event loop's thread (app/sqlite_inline.py). What a user must not notice:
while another process holds the write lock, the service keeps answering (the wait is an
asyncio sleep, not a blocked loop) and the write goes through as soon as the lock is free; a
lock held past the busy timeout is SQLITE_BUSY, which the API answers 503 (tests/faults)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
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

        async def write() -> float:
            async with engine.begin() as conn:
                await conn.execute(
                    Sender.__table__.insert().values(
                        name="株式会社承諾",
                        postal_address="東京都千代田区千代田1-1",
                        contact_email="support@shodaku.example",
                        from_email="news@shodaku.example",
                    )
                )
            return time.monotonic()

        writing = asyncio.create_task(write())
        ticks = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.3:
            await asyncio.sleep(0.01)
            ticks += 1
        assert not writing.done()  # still waiting for the lock…
        assert ticks >= 15  # …while the loop kept running everything else
        holder.execute("ROLLBACK")
        released = time.monotonic()
        finished = await asyncio.wait_for(writing, timeout=5)
        assert finished - released < 0.2  # and it went through once the lock was free
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(Sender.__table__)) == 1
    finally:
        holder.close()
        await engine.dispose()
