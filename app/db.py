"""Engine and sessions: one unit of work per request, committed at the boundary only."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.sqlite_inline import inline_creator


def create_private_sqlite_file(url: str) -> None:
    """DS-6: a new SQLite database file is readable and writable by its owner only (0600).

    It holds every address and the ledger. SQLite gives its -wal and -shm files the mode of the
    database file, so creating the file ourselves, before SQLite does with the umask's mode
    (commonly 0644), covers all three. An existing file is left as the operator set it;
    in-memory databases have no file.
    """
    if not url.startswith("sqlite"):
        return
    (database,), options = SQLiteDialect_pysqlite().create_connect_args(make_url(url))
    if options.get("uri"):
        database = database.removeprefix("file:").split("?", 1)[0]
        if "mode=memory" in url:
            return
    if not database or database == ":memory:" or os.path.exists(database):
        return
    old_umask = os.umask(0o077)
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created meanwhile by another process
        return
    finally:
        os.umask(old_umask)
    os.close(fd)


def make_engine(url: str, *, pool_size: int = 20, sqlite_busy_timeout: float = 60.0) -> AsyncEngine:
    """Build the engine for either supported database.

    Statement parameters are hidden from SQLAlchemy's statement log and from the text of its
    errors, which reach the log with every 500: they hold addresses and tokens' ids (DS-6).

    SQLite: WAL so readers never wait for the writer, a busy timeout so writers queue instead of
    failing, and ``BEGIN IMMEDIATE`` so a transaction takes the write lock up front. A deferred
    transaction that reads and then writes can fail with SQLITE_BUSY without waiting, which is
    exactly what a worker claiming a batch while a request records an opt-out would hit. The
    connection runs on the event loop's thread (``app.sqlite_inline``), and waits for another
    process's write lock up to ``sqlite_busy_timeout`` seconds without blocking the loop.
    """
    if url.startswith("sqlite"):
        # One connection per process: SQLite has one writer anyway, and queueing for the pool
        # (FIFO, without blocking the event loop) beats colliding on the file lock, whose busy
        # handler sleeps with backoff: measured, 215 msg/s with a pool of 20 against the
        # figures in the README with one.
        create_private_sqlite_file(url)
        (database,), options = SQLiteDialect_pysqlite().create_connect_args(make_url(url))
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=120,
            hide_parameters=True,
            async_creator=inline_creator(
                database, uri=bool(options.get("uri")), busy_timeout=sqlite_busy_timeout
            ),
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # Each concurrent sender holds a session; the default pool (5 + 10) times out under 16.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=30,
        pool_pre_ping=True,
        hide_parameters=True,
        # A database host that stops answering (rather than refusing) would otherwise hold each
        # request for the OS TCP timeout (about two minutes) before the 503.
        connect_args={"connect_timeout": 10},
    )


def make_long_read_engine(url: str) -> AsyncEngine | None:
    """SQLite: a second, read-only engine for the long reads (exports, reports), whose
    statements run on aiosqlite's own thread rather than on the event loop; None elsewhere.

    The main engine runs SQLite on the loop's thread with one connection per process
    (``make_engine``): right for the short statements of the hot path, wrong for a read that
    walks 100,000 ledger events, which would hold the loop and the one connection while
    opt-outs wait (SG-2 wants them answered at once). In WAL mode a reader sees a consistent
    snapshot without taking the write lock, so this engine's connections read beside the
    writer; ``query_only`` makes sure they never write. PostgreSQL has a pool of real
    connections and drivers that wait off the loop: it needs no second engine.
    """
    if not url.startswith("sqlite"):
        return None
    (database,), _ = SQLiteDialect_pysqlite().create_connect_args(make_url(url))
    if not database or database == ":memory:" or "mode=memory" in url:
        return None  # a second connection would see another, empty database
    engine = create_async_engine(url, pool_size=2, max_overflow=0, hide_parameters=True)
    # aiosqlite logs each statement with its parameters (addresses, token ids) at DEBUG, below
    # SQLAlchemy's hide_parameters: its logger never goes below INFO (DS-6).
    aiosqlite_log = logging.getLogger("aiosqlite")
    if aiosqlite_log.level < logging.INFO:  # NOTSET (0) included: root may go to DEBUG later
        aiosqlite_log.setLevel(logging.INFO)

    @event.listens_for(engine.sync_engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute("PRAGMA busy_timeout=60000")  # a checkpoint may hold it for a moment
        cursor.close()

    return engine


def insert_for(
    session: AsyncSession,
) -> type[postgresql.Insert] | type[sqlite.Insert]:
    """The INSERT construct of the session's database, for the ``ON CONFLICT`` clauses both
    support with the same spelling (``on_conflict_do_nothing``/``on_conflict_do_update``)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.Insert
    return sqlite.Insert


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield a session; commit when the endpoint returns normally, roll back otherwise."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit runs before the response is sent. With the default ("request")
# FastAPI sends the answer first and commits afterwards, and an opt-out answered before it is
# durable would break SG-2.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
