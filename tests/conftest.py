"""Fixtures shared by the whole suite.

Every test that touches the database runs twice: on SQLite, always, and on PostgreSQL when
``SHODAKU_TEST_DATABASE_URL`` is set (CI sets it). The schema comes from the real migrations,
applied once per run; each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from app.auth.service import create_api_key
from app.config import Settings
from app.main import create_app
from app.models import ConsentEvent
from app.models.enums import ApiKeyScope
from app.runtime import Runtime
from app.sending.outbox import OutboxRun, send_due
from tests.factories import create_list, create_sender
from tests.smtp import SmtpServer, free_port

ROOT = Path(__file__).resolve().parents[1]
BASE_URL = "https://news.example.test"
TEST_KEYS = ["test-key-newest-0123456789", "test-key-older-0123456789"]
# Tables the migrations fill and every test keeps.
KEEP = {"alembic_version", "instance_secrets"}


@event.listens_for(Session, "before_flush")
def _every_consent_event_is_chained(session: Session, _context: object, _instances: object) -> None:
    """CR-3, for the whole suite: a consent event reaches the database only through
    ``app.ledger.chain.append_event``, which gives it its chain hash first. A code path that
    added one any other way would fail every test that takes it."""
    for obj in session.new:
        if isinstance(obj, ConsentEvent) and obj.chain_hash is None:
            raise AssertionError("a consent event was written without append_event (CR-3)")


def _alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    command.upgrade(_alembic_config(f"sqlite+aiosqlite:///{path}"), "head")
    return path


def _sync_url(url: URL) -> URL:
    return url.set(drivername="postgresql+psycopg")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database beside the one SHODAKU_TEST_DATABASE_URL names, migrated once."""
    base = os.environ.get("SHODAKU_TEST_DATABASE_URL")
    if not base:
        pytest.skip("SHODAKU_TEST_DATABASE_URL is not set: PostgreSQL variant not run")
    url = make_url(base).set(drivername="postgresql+psycopg")
    # One database per test run, so that runs in parallel (or a CI run beside a developer's)
    # never drop each other's.
    name = f"{url.database}_shodaku_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    test_url = url.set(database=name).render_as_string(hide_password=False)
    command.upgrade(_alembic_config(test_url), "head")
    yield test_url
    reset = _resets.pop(test_url, None)
    if reset is not None:
        reset.engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class _PostgresReset:
    """Empties the test database between tests, as ``TRUNCATE … RESTART IDENTITY`` would, but
    with DELETEs and ``setval`` over one kept connection: TRUNCATE gives each of some thirty
    tables a new file, which cost a quarter of a second per test; deleting the few rows a test
    wrote costs a few milliseconds. Foreign keys are not checked while it runs
    (``session_replication_role``), so the order of the tables does not matter."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, pool_size=1, pool_pre_ping=True)
        self._sql: str | None = None

    def _statement(self) -> str:
        with self.engine.connect() as conn:
            tables = conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> ALL(:keep)"
                ),
                {"keep": sorted(KEEP)},
            ).scalars()
            tables = sorted(tables)
            sequences = conn.execute(
                text(
                    "SELECT quote_ident(sequencename) FROM pg_sequences WHERE schemaname = 'public'"
                )
            ).scalars()
            sequences = sorted(sequences)
        parts = ["SET LOCAL session_replication_role = replica"]
        # The names come from the catalogue, not from input.
        parts += [f'DELETE FROM "{table}"' for table in tables]  # noqa: S608
        if sequences:
            parts.append("SELECT " + ", ".join(f"setval('{seq}', 1, false)" for seq in sequences))
        return ";\n".join(parts)

    def __call__(self) -> None:
        if self._sql is None:
            self._sql = self._statement()
        with self.engine.begin() as conn:
            conn.exec_driver_sql(self._sql)


_resets: dict[str, _PostgresReset] = {}


def _empty_postgres(url: str) -> None:
    reset = _resets.get(url)
    if reset is None:
        reset = _resets[url] = _PostgresReset(url)
    reset()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "shodaku.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
def smtp_port() -> int:
    """The port the app sends to. Nothing listens there unless the test asks for ``smtp_server``
    too: a test that reads no mail starts no server, and one that mails without reading it
    fails on the refused connection rather than passing unseen."""
    return free_port()


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest, smtp_port: int) -> Iterator[SmtpServer]:
    """Offers PIPELINING unless a test parametrizes it indirectly with ``False``."""
    server = SmtpServer(smtp_port, pipelining=getattr(request, "param", True))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(database_url: str, smtp_port: int, tmp_path: Path) -> Settings:
    return Settings(
        env="dev",
        database_url=database_url,
        secret_keys=TEST_KEYS,
        base_url=BASE_URL,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        outbox_dir=tmp_path / "outbox",
        send_concurrency=4,
        # Off: tests sign up hundreds of times; tests/public/test_answer_time.py turns it on.
        signup_answer_floor=0,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings, run_outbox=False, run_sender=False)
    # As the lifespan does: on SQLite (one connection) a late first load could wait for itself.
    await application.state.runtime.hasher()
    yield application
    await application.state.transport.close()
    await application.state.runtime.dispose()


@pytest.fixture
def runtime(app: Any) -> Runtime:
    rt: Runtime = app.state.runtime
    return rt


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 51000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as c:
        yield c


async def _key(runtime: Runtime, scope: ApiKeyScope) -> str:
    async with runtime.sessionmaker() as session, session.begin():
        _row, key = await create_api_key(session, f"test {scope}", scope)
    return key


@pytest.fixture
async def admin_key(runtime: Runtime) -> str:
    return await _key(runtime, ApiKeyScope.ADMIN)


@pytest.fixture
async def read_key(runtime: Runtime) -> str:
    return await _key(runtime, ApiKeyScope.READ)


@contextlib.asynccontextmanager
async def _api_client(
    app: Any, key: str, client: tuple[str, int]
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(
        transport=transport,
        base_url=f"{BASE_URL}/api/v1",
        headers={"Authorization": f"Bearer {key}"},
    ) as c:
        yield c


@pytest.fixture
async def admin(app: Any, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the admin API with an admin key."""
    async with _api_client(app, admin_key, ("198.51.100.2", 40000)) as c:
        yield c


@pytest.fixture
async def reader(app: Any, read_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the admin API with a read-only key."""
    async with _api_client(app, read_key, ("198.51.100.3", 40001)) as c:
        yield c


async def deliver_outbox(app: Any) -> OutboxRun:
    """Run the outbox sender once, as the background task would."""
    return await send_due(app.state.runtime, app.state.transport, app.state.system_mail)


@pytest.fixture
def outbox(app: Any) -> Any:
    async def _run() -> OutboxRun:
        return await deliver_outbox(app)

    return _run


async def wait_for(predicate: Any, seconds: float = 10.0) -> None:
    """Wait until predicate() is true (polling); fail the test after that many seconds."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def sender(admin: httpx.AsyncClient) -> dict[str, Any]:
    """A sender made through the API (its JSON)."""
    return await create_sender(admin)


@pytest.fixture
async def news(admin: httpx.AsyncClient, sender: dict[str, Any]) -> dict[str, Any]:
    """A list of the sender made through the API (its JSON), double opt-in (the default)."""
    return await create_list(admin, sender["id"])
