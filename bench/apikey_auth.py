"""What checking an API key costs per request, before and after keys gained expiry, senders
and last use: the old lookup (one SELECT by hash, not revoked) against ``authenticate`` (one
SELECT by hash with the key's senders, not revoked, not expired), each in its own short
transaction as the auth dependency runs it, for a key bound to no sender and one bound to two.
Rounds alternate so that a busy machine slows both alike; the figures are the medians.

    .venv/bin/python bench/apikey_auth.py [-n 3000]
    .venv/bin/python bench/apikey_auth.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

last_used_at is written at most once a minute per key; the run lasts less, so after the first
request no round writes it (as on a busy server between two writes).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.service import authenticate, create_api_key, hash_key, record_use
from app.cli import migrate
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.models import ApiKey, Sender
from app.models.enums import ApiKeyScope


def scratch_postgres(database_url: str) -> str:
    """A scratch database of this bench's own beside the one named, created anew."""
    url = make_url(database_url).set(drivername="postgresql+psycopg")
    name = f"{url.database}_shodaku_keybench"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


async def old_lookup(session: AsyncSession, key: str) -> int | None:
    row = await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    )
    return None if row is None else row.id


async def new_lookup(session: AsyncSession, key: str) -> int | None:
    found = await authenticate(session, key)
    if found is None:
        return None
    if found.record_use_at is not None:
        await record_use(session, found.principal.api_key_id, found.record_use_at)
    return found.principal.api_key_id


async def timed(maker: async_sessionmaker[AsyncSession], lookup: object, key: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        async with maker() as session, session.begin():
            assert await lookup(session, key) is not None  # type: ignore[operator]
    return (time.perf_counter() - start) / n * 1e6


async def run(url: str, n: int, rounds: int) -> None:
    engine = make_engine(url, pool_size=2)
    maker = make_sessionmaker(engine)
    async with maker() as session, session.begin():
        senders = []
        for i in range(2):
            sender = Sender(
                name=f"bench {i}",
                postal_address="東京都",
                contact_email="a@example.jp",
                from_email="a@example.jp",
            )
            session.add(sender)
            senders.append(sender)
        await session.flush()
        _row, unbound = await create_api_key(session, "unbound", ApiKeyScope.ADMIN)
        _row, bound = await create_api_key(
            session, "bound", ApiKeyScope.ADMIN, sender_ids=[s.id for s in senders]
        )
    results: dict[str, list[float]] = {"old": [], "new unbound": [], "new bound": []}
    for _ in range(rounds):
        results["old"].append(await timed(maker, old_lookup, unbound, n))
        results["new unbound"].append(await timed(maker, new_lookup, unbound, n))
        results["new bound"].append(await timed(maker, new_lookup, bound, n))
    await engine.dispose()
    base = statistics.median(results["old"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:12s} {median:8.1f} µs per key check   {median / base:5.2f}x the old lookup")
    whole = await whole_requests(url, bound, senders[0].id, n // 4)
    extra = statistics.median(results["new bound"]) - base
    print(
        f"GET /api/v1/senders/{{id}} with a bound key, whole request in-process: {whole:.1f} µs;"
        f" the new key check adds {extra:.1f} µs ({extra / whole:.1%} of it)"
    )


async def whole_requests(url: str, key: str, sender_id: int, n: int) -> float:
    app = create_app(Settings(env="dev", database_url=url), run_outbox=False, run_sender=False)
    await app.state.runtime.hasher()
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        start = time.perf_counter()
        for _ in range(n):
            response = await client.get(f"/api/v1/senders/{sender_id}", headers=headers)
            assert response.status_code == 200, response.text
        elapsed = (time.perf_counter() - start) / n * 1e6
    await app.state.runtime.engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=3000, help="key checks per round and kind")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        if args.database_url:
            url = scratch_postgres(args.database_url)
        migrate(Settings(env="dev", database_url=url))
        asyncio.run(run(url, args.n, args.rounds))


if __name__ == "__main__":
    main()
