"""What the migrations leave on disk: ids that are never reused (DS-6) and a database file only
its owner can read (DS-6)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Integer, text

from app.db import make_engine
from app.models import Base
from tests.conftest import _alembic_config
from tests.processes import _env, _run

IDS_NEVER_REUSED = "941aae4236c1"


def _id_tables() -> list[str]:
    """Every table whose primary key is one integer id the application hands out."""
    found = []
    for table in Base.metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and pk[0].name == "id" and isinstance(pk[0].type, Integer):
            found.append(table.name)
    return found


def _autoincrement(path: Path) -> dict[str, bool]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name: "AUTOINCREMENT" in (sql or "") for name, sql in rows}


def test_ds6_no_table_ever_reuses_an_id_on_sqlite(tmp_path: Path) -> None:
    """DS-6: the audit log, exports and reports name rows by id; SQLite reuses the highest id
    after a delete unless the table is AUTOINCREMENT. Every id table is, and the migration goes
    back and forth keeping the rows."""
    path = tmp_path / "ids.db"
    config = _alembic_config(f"sqlite+aiosqlite:///{path}")
    command.upgrade(config, "head")
    tables = _id_tables()
    assert {"subscribers", "subscriptions", "campaigns", "mailing_lists", "senders"} <= set(tables)
    assert {t: _autoincrement(path)[t] for t in tables} == dict.fromkeys(tables, True)

    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO subscribers (id, email, address_hash, attributes, created_at, updated_at)"
            " VALUES (5, 'a@example.jp', 'h', '{}', '2026-01-01', '2026-01-01')"
        )
    # Back to just before this migration, wherever the chain puts it.
    before = ScriptDirectory.from_config(config).get_revision(IDS_NEVER_REUSED).down_revision
    assert isinstance(before, str)
    command.downgrade(config, before)
    assert _autoincrement(path)["subscribers"] is False
    command.upgrade(config, "head")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id, email FROM subscribers").fetchall() == [(5, "a@example.jp")]
        conn.execute("DELETE FROM subscribers")
        conn.execute(
            "INSERT INTO subscribers (email, address_hash, attributes, created_at, updated_at)"
            " VALUES ('b@example.jp', 'g', '{}', '2026-01-01', '2026-01-01')"
        )
        [(new_id,)] = conn.execute("SELECT id FROM subscribers").fetchall()
    assert new_id == 6  # not 5, the deleted row's id


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_ds6_the_sqlite_database_and_its_wal_and_shm_are_owner_only(
    tmp_path: Path,
) -> None:
    """DS-6: the file holds every address and the ledger; with the usual umask (022) SQLite
    would create it, and its -wal and -shm, readable by every local user."""
    path = tmp_path / "private.db"
    url = f"sqlite+aiosqlite:///{path}"
    old = os.umask(0o022)
    try:
        result = _run(["migrate"], _env(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=url), tmp_path)
        assert result.returncode == 0, result.stderr
        assert _mode(path) == 0o600

        fresh = tmp_path / "fresh.db"  # a file the application itself creates
        engine = make_engine(f"sqlite+aiosqlite:///{fresh}")
        try:
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE t (x INTEGER)"))
                await conn.execute(text("INSERT INTO t VALUES (1)"))
            files = [fresh, Path(f"{fresh}-wal"), Path(f"{fresh}-shm")]
            assert all(f.exists() for f in files)  # WAL mode, the connection still open
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        finally:
            await engine.dispose()
    finally:
        os.umask(old)


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite://"])
def test_in_memory_databases_create_no_file(url: str, tmp_path: Path) -> None:
    from app.db import create_private_sqlite_file

    before = set(Path.cwd().iterdir())
    create_private_sqlite_file(url)
    assert set(Path.cwd().iterdir()) == before


LIST_CHARSET = "3b7d2e9c5a14"


def test_lists_from_before_the_charset_setting_keep_writing_utf_8(tmp_path: Path) -> None:
    """A list created before lists had a charset keeps the UTF-8 its mails always had; going
    back removes the column and keeps the rows, with ids still never reused (DS-6)."""
    path = tmp_path / "charset.db"
    config = _alembic_config(f"sqlite+aiosqlite:///{path}")
    before = ScriptDirectory.from_config(config).get_revision(LIST_CHARSET).down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO senders (id, name, postal_address, from_email, created_at, updated_at)"
            " VALUES (1, 's', 'a', 'n@example.jp', '2026-01-01', '2026-01-01')"
        )
        conn.execute(
            "INSERT INTO mailing_lists (id, sender_id, name, slug, purpose, double_opt_in,"
            " language, created_at, updated_at)"
            " VALUES (3, 1, 'n', 'n', 'p', 1, 'ja', '2026-01-01', '2026-01-01')"
        )
    command.upgrade(config, LIST_CHARSET)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id, charset FROM mailing_lists").fetchall() == [(3, "utf-8")]
    command.downgrade(config, before)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT * FROM mailing_lists").fetchone()[0] == 3
        columns = [row[1] for row in conn.execute("PRAGMA table_info(mailing_lists)")]
    assert "charset" not in columns
    assert _autoincrement(path)["mailing_lists"] is True
