"""The ``shodaku`` command as an operator runs it (API.md, CLI)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]
SHODAKU = Path(sys.executable).parent / "shodaku"
if not SHODAKU.exists():  # pragma: no cover - a test run outside the project's venv
    SHODAKU = ROOT / ".venv" / "bin" / "shodaku"


def _env(**values: str) -> dict[str, str]:
    # Only what the test sets: a developer's own SHODAKU_* variables must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHODAKU_")}
    env.update(values)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SHODAKU), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def migrated(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    result = _run(["migrate"], _env(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=url), tmp_path)
    assert result.returncode == 0, result.stderr
    return url


async def test_apikey_create_prints_the_key_alone_on_the_last_line_and_it_works(
    migrated: str, tmp_path: Path
) -> None:
    result = _run(
        ["apikey", "create", "--name", "x", "--scope", "read"],
        _env(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=migrated),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.splitlines()[-1]
    assert key.startswith("shk_")
    assert key == key.strip()
    assert " " not in key
    assert key not in result.stderr  # shown once, on stdout only

    app = create_app(
        Settings(env="dev", database_url=migrated, outbox_dir=tmp_path / "outbox"),
        run_outbox=False,
        run_sender=False,
    )
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test/api/v1",
            headers={"Authorization": f"Bearer {key}"},
        ) as api:
            read = await api.get("/senders")
            assert read.status_code == 200
            assert read.json() == {"items": [], "next_cursor": None}
            write = await api.post("/senders", json={"name": "x"})
            assert write.status_code == 403  # a read key
    finally:
        await app.state.transport.close()
        await app.state.runtime.engine.dispose()


def test_migrate_refuses_prod_without_secret_keys(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'prod.db'}"
    result = _run(["migrate"], _env(SHODAKU_ENV="prod", SHODAKU_DATABASE_URL=url), tmp_path)
    assert result.returncode != 0
    assert "SHODAKU_SECRET_KEYS" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    assert not (tmp_path / "prod.db").exists()  # refused before touching the database


@pytest.mark.parametrize(
    "command",
    [["apikey", "create", "--name", "x"], ["purge", "--dry-run"], ["verify-ledger"], ["worker"]],
)
def test_commands_on_a_missing_database_say_what_to_run_and_create_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    result = _run(command, _env(SHODAKU_ENV="dev"), tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no database at" in result.stderr
    assert "shodaku migrate" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_commands_on_an_unmigrated_or_outdated_database_say_migrate(
    tmp_path: Path, migrated: str
) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    url = f"sqlite+aiosqlite:///{empty}"
    result = _run(
        ["apikey", "create", "--name", "x"],
        _env(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=url),
        tmp_path,
    )
    assert result.returncode == 2
    assert "no schema yet: run `shodaku migrate` first" in result.stderr
    assert sqlite3.connect(empty).execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)

    path = migrated.split("///", 1)[1]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '101b44f54c9c'")
    result = _run(
        ["verify-ledger"], _env(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=migrated), tmp_path
    )
    assert result.returncode == 2
    assert "at migration 101b44f54c9c" in result.stderr
    assert "run `shodaku migrate` first" in result.stderr


def test_help_is_plain_text(tmp_path: Path) -> None:
    result = _run(["--help"], _env(), tmp_path)
    assert result.returncode == 0
    assert "``" not in result.stdout
    assert "`" not in result.stdout
    assert "serve" in result.stdout
