"""Fixtures for fuzzing: a seeded database, an admin key, and the app as schemathesis sees it.

schemathesis drives the app in-process through its ASGI transport, on an event loop thread of
its own; so the app it tests is built here, its database is touched first on that loop, and its
lifespan (which disposes the engine) is ended on that loop at teardown. The seeding runs before,
through the real API, in an app of its own on a loop of its own.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import update

from app.auth.service import create_api_key
from app.config import Settings
from app.main import create_app
from app.models import ApiKey
from app.models.enums import ApiKeyScope
from tests.conftest import BASE_URL, TEST_KEYS, _empty_postgres
from tests.factories import SENDER, consent_body

FUZZ_KEY_ID = 1_000_003

TEMPLATE = {
    "name": "月刊ニュース",
    "subject": "{{ sender.name }}からのお知らせ",
    "html": "<p>{{ name or 'お客様' }}様</p><p>今月の新製品です。</p>",
}


@dataclass(frozen=True)
class World:
    """What the seeded database holds: ids that exist, so that generated ids sometimes hit."""

    admin_key: str
    sender_id: int
    list_id: int
    subscriber_id: int
    template_id: int
    campaign_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


async def _seed(settings: Settings) -> World:
    app = create_app(settings, run_outbox=False, run_sender=False)
    runtime = app.state.runtime
    try:
        async with runtime.sessionmaker() as session, session.begin():
            row, key = await create_api_key(session, "fuzz", ApiKeyScope.ADMIN)
            # An id the generated ones (small numbers and bounds) do not hit: a fuzzed
            # POST /api-keys/{id}/revoke must not revoke the key every later operation uses.
            await session.execute(update(ApiKey).where(ApiKey.id == row.id).values(id=FUZZ_KEY_ID))
        transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
        async with httpx.AsyncClient(
            transport=transport,
            base_url=f"{BASE_URL}/api/v1",
            headers={"Authorization": f"Bearer {key}"},
        ) as admin:

            async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
                response = await admin.post(path, json=body)
                assert response.status_code == 201, response.text
                created: dict[str, Any] = response.json()
                return created

            sender = await post("/senders", SENDER)
            news = await post(
                "/lists",
                {
                    "name": "承諾ニュース",
                    "slug": "news",
                    "sender_id": sender["id"],
                    "purpose": "新製品とセミナーのご案内をお送りするため",
                    "double_opt_in": False,
                },
            )
            consent = await post(f"/lists/{news['id']}/consents", consent_body("taro@example.jp"))
            template = await post("/templates", TEMPLATE)
            campaign = await post(
                "/campaigns",
                {"name": "六月号", "list_id": news["id"], "template_id": template["id"]},
            )
        return World(
            admin_key=key,
            sender_id=sender["id"],
            list_id=news["id"],
            subscriber_id=consent["subscription"]["subscriber_id"],
            template_id=template["id"],
            campaign_id=campaign["id"],
        )
    finally:
        await app.state.transport.close()
        await runtime.dispose()


@dataclass(frozen=True)
class Target:
    """The app under fuzzing and what its database was seeded with."""

    app: Any
    world: World
    database: str


def _database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database of this module's own, migrated (a copy of the template, or PostgreSQL's test
    database emptied first)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("fuzz") / "shodaku.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """One app per module and database, seeded once: every operation is fuzzed against it, so
    later operations meet what earlier ones created."""
    database = _database(request, tmp_path_factory)
    settings = Settings(
        env="dev",
        database_url=database,
        secret_keys=TEST_KEYS,
        base_url=BASE_URL,
        outbox_dir=tmp_path_factory.mktemp("outbox"),
        # Off, so that the signup door is fuzzed rather than answering 429 after 20 requests.
        signup_limit_per_ip=0,
        signup_limit_per_address=0,
        signup_answer_floor=0,
    )
    world = asyncio.run(_seed(settings))
    app = create_app(settings, run_outbox=False, run_sender=False)
    yield Target(app=app, world=world, database=request.param)
    # Ends the app's lifespan on schemathesis' loop, where its connections live: the engine
    # is disposed there.
    shutdown_lifespans()
