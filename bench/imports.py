"""Import throughput and memory (DS-4): a provider's CSV of 100,000 rows, in UTF-8 and in
Shift_JIS, posted as multipart/form-data to the real app (create_app, over httpx's ASGI
transport, in this process) on a scratch database.

    .venv/bin/python bench/imports.py                   # SQLite, 100,000 rows
    .venv/bin/python bench/imports.py -n 20000 --consented 0.5
    .venv/bin/python bench/imports.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

A 10,000-row import runs first, so that its peak can be set beside the 100,000-row ones: if the
import streams, ten times the rows costs no more memory. Prints rows/s of each import and the
process's peak RSS (ru_maxrss) at the baseline (app running, files written, nothing imported)
and after each import.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.auth.service import create_api_key  # noqa: E402
from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.models import MailingList, Sender  # noqa: E402
from app.models.enums import ApiKeyScope  # noqa: E402

KEY = "bench-secret-key-0123456789abcdef"
HEADER = (
    "メールアドレス,氏名,会社名,basis,method,obtained_at,sender_id,"
    "evidence.transaction_ref,evidence.transaction_date\r\n"
)
ACQUISITION = {
    "provider_name": "株式会社名簿サービス",
    "provider_address": "〒150-0001 東京都渋谷区神宮前1-2-3",
    "provider_representative": "代表取締役 鈴木一郎",
    "acquisition_circumstances": "提供元が自社の展示会で名刺交換により取得した名簿",
    "received_at": "2026-11-01T10:00:00+09:00",
    "items": "メールアドレス,氏名,会社名",
}


def peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_csv(
    path: Path, n: int, prefix: str, encoding: str, consented: float, sender: int
) -> None:
    """A provider's sheet, written line by line: every ``1/consented``-th row carries evidence
    naming the sender; one row in a thousand has a broken address."""
    every = round(1 / consented) if consented > 0 else 0
    with path.open("w", encoding=encoding, newline="") as out:
        out.write(HEADER)
        for i in range(n):
            email = f"{prefix}{i:07d}@example.jp" if i % 1000 != 999 else f"broken{i}example.jp"
            consent = ",,,,,"
            if every and i % every == 0:
                consent = (
                    f"business_relationship,web_form,2026-10-01T09:00:00+09:00,{sender},"
                    f"注文-{i},2026-09-30"
                )
            out.write(f"{email},山田 花子{i},㈱山田商店,{consent}\r\n")


def scratch_database(url: str | None, tmp: Path) -> tuple[str, Any]:
    """A migrated scratch database: a SQLite file, or a fresh PostgreSQL database beside the one
    named (dropped at the end)."""
    if url is None:
        db_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"

        def drop() -> None:
            return None

    else:
        base = make_url(url).set(drivername="postgresql+psycopg")
        name = f"{base.database}_bench_imports_{os.getpid()}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        db_url = base.set(database=name).render_as_string(hide_password=False)

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    return db_url, drop


async def bench(args: argparse.Namespace, tmp: Path, db_url: str) -> None:
    settings = Settings(
        env="dev", database_url=db_url, secret_keys=[KEY], outbox_dir=tmp / "outbox"
    )
    app = create_app(settings, run_outbox=False, run_sender=False)
    runtime = app.state.runtime
    async with runtime.sessionmaker() as session, session.begin():
        _row, key = await create_api_key(session, "bench", ApiKeyScope.ADMIN)
        sender = Sender(
            name="株式会社承諾",
            postal_address="〒100-0001 東京都千代田区千代田1-1",
            contact_email="support@shodaku.example",
            from_email="news@shodaku.example",
        )
        session.add(sender)
        await session.flush()
        lists = [
            MailingList(
                sender_id=sender.id,
                name=f"承諾ニュース {i}",
                slug=f"news-{i}",
                purpose="新製品とイベントのお知らせ",
                double_opt_in=True,
                language="ja",
            )
            for i in range(3)
        ]
        session.add_all(lists)
        await session.flush()
        sender_id, list_ids = sender.id, [m.id for m in lists]

    runs = [
        ("warm-up, UTF-8", 10_000, "utf-8", "w"),
        ("UTF-8", args.rows, "utf-8", "u"),
        ("Shift_JIS (cp932)", args.rows, "cp932", "s"),
    ]
    files = []
    for label, n, encoding, prefix in runs:
        path = tmp / f"{prefix}.csv"
        write_csv(path, n, prefix, encoding, args.consented, sender_id)
        files.append((label, n, path))

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://bench/api/v1",
        headers={"Authorization": f"Bearer {key}"},
        timeout=None,  # noqa: S113 (a 100,000-row import takes minutes)
    ) as client:
        await runtime.hasher()
        print(f"database: {make_url(db_url).get_backend_name()}")
        print(f"consented share: {args.consented:.0%}; one row in 1,000 invalid")
        print(f"baseline peak RSS (app up, files written): {peak_rss_mib():.1f} MiB")
        for (label, n, path), list_id in zip(files, list_ids, strict=True):
            size = path.stat().st_size / (1024 * 1024)
            with path.open("rb") as upload:
                started = time.perf_counter()
                response = await client.post(
                    "/imports",
                    data={**ACQUISITION, "list_id": str(list_id)},
                    files={"file": (path.name, upload, "text/csv")},
                )
                elapsed = time.perf_counter() - started
            if response.status_code != 201:
                raise SystemExit(f"{label}: {response.status_code} {response.text[:500]}")
            report = response.json()
            print(
                f"{label:>20}: {n:>7,} rows ({size:.1f} MiB) in {elapsed:6.1f} s = "
                f"{n / elapsed:7,.0f} rows/s; consented {report['consented']:,}, "
                f"unconsented {report['unconsented']:,}, invalid {report['invalid_count']:,}; "
                f"peak RSS after: {peak_rss_mib():.1f} MiB"
            )
    await runtime.engine.dispose()
    await app.state.transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rows", type=int, default=100_000)
    parser.add_argument("--consented", type=float, default=0.1, help="share of rows with consent")
    parser.add_argument("--database-url", help="PostgreSQL URL; default: a scratch SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shodaku-bench-imports-") as name:
        tmp = Path(name)
        db_url, drop = scratch_database(args.database_url, tmp)
        try:
            asyncio.run(bench(args, tmp, db_url))
        finally:
            drop()


if __name__ == "__main__":
    main()
