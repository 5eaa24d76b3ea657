"""On SQLite the long reads (the consent export, the compliance report) run on a read-only
connection of their own, off the event loop (app.db.make_long_read_engine). What a user notices:
an export streams while a write is in progress on the service's one writing connection, and the
opt-outs and signups that need that connection never queue behind an export (SG-2)."""

from __future__ import annotations

import asyncio
import csv
import io

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from app.auth.service import Principal
from app.models import ApiKey
from app.models.enums import ApiKeyScope
from app.runtime import Runtime
from app.subscriptions.admin_service import consent_export
from tests.factories import create_list, create_sender, record_consent

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
async def test_sg2_a_consent_export_streams_while_the_writer_is_busy(
    admin: httpx.AsyncClient, admin_key: str, runtime: Runtime
) -> None:
    sender = await create_sender(admin)
    news = await create_list(admin, sender["id"])
    for i in range(3):
        await record_consent(admin, news["id"], f"reader{i}@example.jp")
    async with runtime.sessionmaker() as session, session.begin():
        key_id = await session.scalar(select(ApiKey.id).limit(1))
        assert key_id is not None
        stream = await consent_export(
            session,
            runtime.long_reads,
            Principal(api_key_id=key_id, scope=ApiKeyScope.READ),
            list_id=news["id"],
            email=None,
            fmt="csv",
        )

    async def download() -> str:
        return b"".join([chunk async for chunk in stream]).decode()

    # The download is under way when a write transaction takes the service's one writing
    # connection, as a request or the sender does. The export reads beside it, not after it.
    async with runtime.sessionmaker() as writer, writer.begin():
        await writer.execute(text("UPDATE senders SET name = name"))
        body = await asyncio.wait_for(download(), timeout=30)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert sorted(row["email"] for row in rows) == [f"reader{i}@example.jp" for i in range(3)]


@sqlite_only
async def test_the_long_read_connection_cannot_write(runtime: Runtime) -> None:
    assert runtime.long_read_engine is not None
    async with runtime.long_reads() as session:
        with pytest.raises(OperationalError, match="readonly"):
            await session.execute(text("UPDATE senders SET name = 'x'"))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_needs_no_second_engine(runtime: Runtime) -> None:
    assert runtime.long_read_engine is None
    assert runtime.long_reads is runtime.sessionmaker
