"""Issue 5, Faults: the database restarted under the API (PostgreSQL). Requests during the outage
get 503 with the API.md error body, never 500; the service recovers by itself (the first request
once PostgreSQL is back succeeds, no restart of Shodaku); no consent is half-written (CR-1, STYLE
2: a signup's grant event, subscription and confirmation outbox row commit together or not at
all).

Runs against a throwaway PostgreSQL of its own (``throwaway_postgres.py``), never the shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command
from sqlalchemy import func, select

from app.auth.service import create_api_key
from app.config import Settings
from app.main import create_app
from app.models import ConsentEvent, OutboxMessage, Subscriber, Subscription
from app.models.enums import ApiKeyScope, ConsentEventKind, SubscriptionStatus
from app.runtime import Runtime
from tests.conftest import BASE_URL, TEST_KEYS, _alembic_config
from tests.factories import make_world
from tests.faults.throwaway_postgres import ThrowawayPostgres, why_not_available
from tests.smtp import SmtpServer

WORDING = "承諾ニュースを受け取ることに同意します(配信者: 株式会社承諾)"


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    """A migrated PostgreSQL server that this test alone may stop and start."""
    reason = why_not_available()
    if reason is not None:
        pytest.skip(f"no throwaway PostgreSQL: {reason}")
    server = ThrowawayPostgres()
    try:
        server.init()
        server.start()
        command.upgrade(_alembic_config(server.url), "head")
        yield server
    finally:
        server.remove()


@pytest.fixture
async def shodaku(postgres: ThrowawayPostgres, smtp_server: SmtpServer, tmp_path: Any) -> Any:
    settings = Settings(
        env="dev",
        database_url=postgres.url,
        secret_keys=TEST_KEYS,
        base_url=BASE_URL,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        outbox_dir=tmp_path / "outbox",
    )
    app = create_app(settings, run_outbox=False, run_sender=False)
    yield app
    await app.state.transport.close()
    await app.state.runtime.dispose()


@contextlib.asynccontextmanager
async def _clients(app: Any) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    runtime: Runtime = app.state.runtime
    async with runtime.sessionmaker() as session, session.begin():
        _row, key = await create_api_key(session, "faults", ApiKeyScope.ADMIN)
    public_transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 51000))
    admin_transport = httpx.ASGITransport(app=app, client=("198.51.100.2", 40000))
    async with (
        httpx.AsyncClient(transport=public_transport, base_url=BASE_URL) as public,
        httpx.AsyncClient(
            transport=admin_transport,
            base_url=f"{BASE_URL}/api/v1",
            headers={"Authorization": f"Bearer {key}"},
        ) as admin,
    ):
        yield public, admin


async def _signup(public: httpx.AsyncClient, email: str) -> httpx.Response:
    return await public.post(
        "/subscribe/news", json={"email": email, "consent": True, "consent_text": WORDING}
    )


def _assert_unavailable(response: httpx.Response, door: str) -> None:
    assert response.status_code == 503, f"{door}: {response.status_code} {response.text[:300]}"
    body = response.json()
    assert body["error"] == "ServiceUnavailable", (door, body)
    assert body["detail"].endswith("."), (door, body)
    assert response.headers.get("retry-after"), door


async def _wait_for_lock_wait(blocker: psycopg.AsyncConnection[Any]) -> set[str]:
    """Wait until the signup's backend waits for the locked outbox table; return the tables it
    has already written to in its open transaction (it holds a granted RowExclusiveLock on
    each). pg_locks is read live, unlike pg_stat_activity, which is a snapshot per transaction.
    """
    for _ in range(200):
        cursor = await blocker.execute(
            "SELECT pid FROM pg_locks WHERE relation = 'outbox_messages'::regclass AND NOT granted"
        )
        row = await cursor.fetchone()
        if row is not None:
            cursor = await blocker.execute(
                "SELECT relation::regclass::text FROM pg_locks "
                "WHERE pid = %s AND mode = 'RowExclusiveLock' AND granted",
                (row[0],),
            )
            return {r[0] for r in await cursor.fetchall()}
        await asyncio.sleep(0.05)
    raise AssertionError("the signup never reached the locked table")


async def _consent_rows(runtime: Runtime, email: str) -> dict[str, int]:
    """What the database holds of one person's signup."""
    async with runtime.sessionmaker() as session:
        subscriber_id = await session.scalar(select(Subscriber.id).where(Subscriber.email == email))
        if subscriber_id is None:
            events = await session.scalar(
                select(func.count()).select_from(ConsentEvent).where(ConsentEvent.email == email)
            )
            return {"subscribers": 0, "grant_events": int(events or 0)}
        grants = await session.scalar(
            select(func.count())
            .select_from(ConsentEvent)
            .where(
                ConsentEvent.subscriber_id == subscriber_id,
                ConsentEvent.kind == ConsentEventKind.GRANT,
            )
        )
        subscription = await session.scalar(
            select(Subscription).where(Subscription.subscriber_id == subscriber_id)
        )
        outbox = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.subscription_id == (subscription.id if subscription else -1))
        )
    return {
        "subscribers": 1,
        "grant_events": int(grants or 0),
        "pending_subscriptions": int(
            subscription is not None and subscription.status == SubscriptionStatus.PENDING
        ),
        "outbox": int(outbox or 0),
    }


FULL_SIGNUP = {"subscribers": 1, "grant_events": 1, "pending_subscriptions": 1, "outbox": 1}
NOTHING = {"subscribers": 0, "grant_events": 0}


async def test_postgres_restart_gets_503_recovers_alone_and_half_writes_no_consent(
    postgres: ThrowawayPostgres, shodaku: Any
) -> None:
    """Issue 5 / CR-1: PostgreSQL restarted under the API: 503 with the error body at every door
    during the outage (healthz too), the first request after it succeeds, and the signup caught
    in flight left nothing, while the ones around it are whole."""
    runtime: Runtime = shodaku.state.runtime
    world = await make_world(runtime)
    hasher = await runtime.hasher()
    async with _clients(shodaku) as (public, admin):
        assert (await public.get("/healthz")).status_code == 200
        assert (await _signup(public, "before@example.jp")).status_code == 202
        async with runtime.sessionmaker() as session:
            before_id = await session.scalar(
                select(Subscriber.id).where(Subscriber.email == "before@example.jp")
            )
        assert before_id is not None
        token = runtime.signer.unsubscribe_token(
            before_id, world.list_id, hasher("before@example.jp")
        )

        # A signup in flight when the server goes down: held inside its unit of work by a lock
        # on the outbox table, after it has written its subscriber and its consent event.
        blocker = await psycopg.AsyncConnection.connect(postgres.conninfo)
        try:
            await blocker.execute("LOCK TABLE outbox_messages IN ACCESS EXCLUSIVE MODE")
            in_flight = asyncio.create_task(_signup(public, "inflight@example.jp"))
            written = await _wait_for_lock_wait(blocker)
            assert {"subscribers", "subscriptions", "consent_events"} <= written, written
            await asyncio.to_thread(postgres.stop, "fast")
            response = await in_flight
            # A fast shutdown ends the blocking session too, and the signup's transaction may
            # win the race and commit before its own backend is told to stop. Either outcome is
            # whole (that is the point): refused with 503 and nothing written, or 202 and all
            # of it written. Anything in between fails below.
            caught = response.status_code != 202
            if caught:
                _assert_unavailable(response, "the signup in flight")
        finally:
            with contextlib.suppress(psycopg.Error):
                await blocker.close()

        # During the outage: every door answers 503 with the error body, none 500.
        _assert_unavailable(await public.get("/healthz"), "GET /healthz")
        _assert_unavailable(await admin.get("/lists"), "GET /api/v1/lists")
        _assert_unavailable(
            await admin.post("/subscribers", json={"email": "down@example.jp"}),
            "POST /api/v1/subscribers",
        )
        _assert_unavailable(await _signup(public, "during@example.jp"), "POST /subscribe")
        _assert_unavailable(
            await public.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}),
            "POST /unsubscribe (one-click)",
        )

        # Back: the very first request succeeds, without restarting Shodaku.
        await asyncio.to_thread(postgres.start)
        lists = await admin.get("/lists")
        assert lists.status_code == 200, lists.text
        assert [item["id"] for item in lists.json()["items"]] == [world.list_id]
        assert (await public.get("/healthz")).status_code == 200

        # Nothing half-written: the signup caught in flight left no trace at all (its subscriber
        # and consent event were rolled back with it), nor did the ones refused with 503; the
        # one before the outage is whole.
        assert await _consent_rows(runtime, "inflight@example.jp") == (
            NOTHING if caught else FULL_SIGNUP
        )
        assert await _consent_rows(runtime, "during@example.jp") == NOTHING
        assert await _consent_rows(runtime, "down@example.jp") == NOTHING
        assert await _consent_rows(runtime, "before@example.jp") == FULL_SIGNUP

        # The person tries again, as the 503 asked: one whole signup, like any other.
        if caught:
            assert (await _signup(public, "inflight@example.jp")).status_code == 202
        assert (await _signup(public, "after@example.jp")).status_code == 202
    assert await _consent_rows(runtime, "inflight@example.jp") == FULL_SIGNUP
    assert await _consent_rows(runtime, "after@example.jp") == FULL_SIGNUP
    async with runtime.sessionmaker() as session:
        total_events = await session.scalar(select(func.count()).select_from(ConsentEvent))
    assert total_events == 3
