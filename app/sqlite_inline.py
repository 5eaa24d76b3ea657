"""SQLite run on the event loop's own thread, behind the interface SQLAlchemy's aiosqlite dialect
drives.

aiosqlite hands every call (cursor, execute, fetch, close, commit) to a thread of its own and
back. On these machines one such hop costs about 150 µs, while the statements Shodaku runs take
tens of microseconds: measured, a transaction updating eight rows took 4.5 ms through
aiosqlite and SQLAlchemy, and 0.07 ms as plain ``sqlite3``. With one connection per process
(``app.db``), every transaction queues behind the one before it, so those hops were the
sender's and every request's largest cost. Here each call runs at once, on the loop's thread.

What would block the loop instead is waiting for the write lock another process holds: the
connection has no busy timeout of its own, and a statement refused with ``SQLITE_BUSY`` is
retried after an ``asyncio.sleep`` with backoff until the connection's ``busy_timeout`` runs
out, so the loop serves everything else meanwhile. A statement refused with SQLITE_BUSY had no
effect, so running it again is safe.

The price: a long statement (a large export page, a retention purge, the WAL checkpoint a
commit sometimes runs) holds the loop for its duration. With one connection per process the
other transactions waited for it anyway; what now waits too is network I/O in flight.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_BUSY_SNAPSHOT = sqlite3.SQLITE_BUSY | (2 << 8)  # waiting cannot cure it: the snapshot is stale
_FIRST_BACKOFF = 0.001
_MAX_BACKOFF = 0.05


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Another connection holds the lock: waiting cures it."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY and code != _BUSY_SNAPSHOT


class InlineCursor:
    """An ``aiosqlite.Cursor`` look-alike whose calls finish before they return."""

    def __init__(self, connection: InlineConnection) -> None:
        self._connection = connection
        self._open: sqlite3.Cursor | None = None

    @property
    def _cursor(self) -> sqlite3.Cursor:
        if self._open is None:
            self._open = self._connection._conn.cursor()
        return self._open

    async def __aenter__(self) -> InlineCursor:
        # Opened here, where SQLAlchemy maps errors (a closed connection among them).
        _ = self._cursor
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Any]:
        for row in self._cursor:
            yield row

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        cursor = self._cursor
        if parameters is None:
            await self._connection._run(cursor.execute, sql)
        else:
            await self._connection._run(cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        await self._connection._run(self._cursor.executemany, sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    async def nextset(self) -> None:
        return None

    async def close(self) -> None:
        if self._open is not None:
            self._open.close()


class _ImmediateQueue:
    """SQLAlchemy's dialect sets ``isolation_level`` by queueing a function for aiosqlite's
    thread (``_tx.put_nowait((future, function))``): here the function runs at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    """An ``aiosqlite.Connection`` look-alike over a ``sqlite3`` connection used only from the
    event loop's thread."""

    def __init__(self, connection: sqlite3.Connection, busy_timeout: float) -> None:
        self._connection: sqlite3.Connection | None = connection
        self.busy_timeout = busy_timeout
        self._tx = _ImmediateQueue()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("Connection closed")
        return self._connection

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        """Run a call, waiting (without blocking the loop) while another connection holds the
        write lock, up to ``busy_timeout`` seconds."""
        try:
            return call(*args)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
            first = exc
        deadline = time.monotonic() + self.busy_timeout
        backoff = _FIRST_BACKOFF
        while time.monotonic() < deadline:
            await asyncio.sleep(min(backoff, max(deadline - time.monotonic(), 0)))
            backoff = min(backoff * 2, _MAX_BACKOFF)
            try:
                return call(*args)
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
        raise first

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._conn.isolation_level = value  # type: ignore[assignment]

    def cursor(self) -> InlineCursor:
        return InlineCursor(self)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        cursor = InlineCursor(self)
        return await cursor.execute(sql, parameters)

    async def commit(self) -> None:
        await self._run(self._conn.commit)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def stop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def inline_creator(database: str, *, uri: bool, busy_timeout: float) -> Callable[[], Any]:
    """The ``async_creator`` for ``create_async_engine``."""

    async def connect() -> InlineConnection:
        connection = sqlite3.connect(
            database,
            uri=uri,
            timeout=0,
            isolation_level=None,
            check_same_thread=True,
        )
        return InlineConnection(connection, busy_timeout)

    return connect
