"""Alembic environment: async engine, either database. The URL is the caller's, else the
``SHODAKU_DATABASE_URL`` setting."""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import create_private_sqlite_file
from app.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    return os.environ.get("SHODAKU_DATABASE_URL", "sqlite+aiosqlite:///./shodaku.db")


def _ours(name: str | None, type_: str, _parent: object) -> bool:
    # procrastinate's tables come from its own schema (a migration applies it): autogenerate
    # must neither drop nor diff them.
    return not (
        type_ in ("table", "index")
        and (name or "").startswith(("procrastinate_", "idx_procrastinate"))
    )


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=_ours,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    create_private_sqlite_file(_url())  # DS-6: owner-only, whoever creates the file first
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())
