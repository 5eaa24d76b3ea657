"""The ``shodaku`` command as an operator runs it (API.md, CLI)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.processes import _env, _run


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
        await app.state.runtime.dispose()


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


async def test_apikey_bound_expiring_listed_and_revoked(migrated: str, tmp_path: Path) -> None:
    """DS-6: ``apikey create --sender --expires``, ``apikey list`` (never a key) and
    ``apikey revoke`` (the key is refused from then on), each audited."""
    env = _env(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=migrated)
    owner = _run(["apikey", "create", "--name", "owner"], env, tmp_path)
    assert owner.returncode == 0, owner.stderr
    owner_key = owner.stdout.splitlines()[-1]

    app = create_app(
        Settings(env="dev", database_url=migrated, outbox_dir=tmp_path / "outbox"),
        run_outbox=False,
        run_sender=False,
    )

    def client(key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test/api/v1",
            headers={"Authorization": f"Bearer {key}"},
        )

    try:
        async with client(owner_key) as api:
            sender = await api.post(
                "/senders",
                json={
                    "name": "株式会社CLI",
                    "postal_address": "東京都千代田区1-1",
                    "contact_email": "info@cli.example",
                    "from_email": "news@cli.example",
                },
            )
            assert sender.status_code == 201, sender.text
            sender_id = sender.json()["id"]

        bound = _run(
            [
                "apikey",
                "create",
                "--name",
                "partner",
                "--scope",
                "read",
                "--sender",
                str(sender_id),
                "--expires",
                "2099-12-31",
            ],
            env,
            tmp_path,
        )
        assert bound.returncode == 0, bound.stderr
        bound_key = bound.stdout.splitlines()[-1]
        assert bound_key.startswith("shk_")

        listing = _run(["apikey", "list"], env, tmp_path)
        assert listing.returncode == 0, listing.stderr
        assert owner_key not in listing.stdout
        assert bound_key not in listing.stdout
        header, *rows = listing.stdout.splitlines()
        assert header.split("\t") == [
            "id", "name", "scope", "prefix", "senders", "created", "expires", "last_used",
            "revoked",
        ]  # fmt: skip
        partner = next(r.split("\t") for r in rows if r.split("\t")[1] == "partner")
        assert partner[2] == "read"
        assert partner[4] == str(sender_id)
        assert partner[6] == "2100-01-01T00:00:00+00:00"  # through the last day, UTC
        assert partner[8] == "-"
        owner_row = next(r.split("\t") for r in rows if r.split("\t")[1] == "owner")
        assert owner_row[4] == "all"
        assert owner_row[7] != "-"  # the owner key was used above

        async with client(bound_key) as api:
            assert (await api.get(f"/senders/{sender_id}")).status_code == 200
            revoked = _run(["apikey", "revoke", partner[0]], env, tmp_path)
            assert revoked.returncode == 0, revoked.stderr
            assert "revoked" in revoked.stdout
            assert (await api.get(f"/senders/{sender_id}")).status_code == 401

        async with client(owner_key) as api:
            audit = (await api.get("/audit", params={"action": "api_key"})).json()["items"]
        actions = sorted((e["action"], e["target_id"]) for e in audit)
        assert ("api_key.revoke", partner[0]) in actions
        assert ("api_key.create", partner[0]) in actions
        assert all(e["details"]["via"] == "cli" for e in audit)
    finally:
        await app.state.transport.close()
        await app.state.runtime.dispose()


def test_apikey_create_refuses_an_unknown_sender_and_a_bad_date(
    migrated: str, tmp_path: Path
) -> None:
    env = _env(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=migrated)
    unknown = _run(
        ["apikey", "create", "--name", "x", "--sender", "77", "78", "--sender", "79"], env, tmp_path
    )
    assert unknown.returncode == 1
    assert "there is no sender 77, 78, 79" in unknown.stderr
    assert "shk_" not in unknown.stdout
    bad_date = _run(["apikey", "create", "--name", "x", "--expires", "soon"], env, tmp_path)
    assert bad_date.returncode == 2
    assert "--expires" in bad_date.stderr
    missing = _run(["apikey", "revoke", "42"], env, tmp_path)
    assert missing.returncode == 1
    assert "no API key 42" in missing.stderr
    listing = _run(["apikey", "list"], env, tmp_path)
    assert listing.stdout.splitlines()[1:] == []
