"""Opt-out under load: while a campaign sends at full speed, recipients not yet mailed opt out
through the RFC 8058 one-click endpoint at random moments. Checks that none of them receives a
message whose SMTP transaction started after their opt-out was answered, and reports the
latency of the opt-out requests during sending.

    .venv/bin/python bench/optout.py               # 20,000 recipients, 200 opt-outs, SQLite
    .venv/bin/python bench/optout.py -n 5000 --optouts 100
    .venv/bin/python bench/optout.py --export-events 100000   # while a consent export streams

With ``--export-events N`` the ledger holds N consent events (the campaign's list plus a second
list of the same sender), and the whole ledger's consent export (``GET /consents/export``)
streams again and again while the campaign sends: the long reads the opt-outs must not wait for.

The sink is bench/sink.py, which records when each recipient's SMTP transaction started.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, make_url, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import KEY, ROOT, Shodaku, free_port, seed_consented, wait_port

from app.tokens import TokenSigner


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def fire_optouts(
    base: str, targets: list[tuple[str, str]], spread: float
) -> dict[str, tuple[float, float]]:
    """POST one-click for each target at a random moment in [0.2 s, spread]; return
    email -> (time the answer arrived, latency in seconds)."""
    answered: dict[str, tuple[float, float]] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def one(email: str, token: str) -> None:
            await asyncio.sleep(random.uniform(0.2, spread))
            started = time.perf_counter()
            response = await client.post(
                f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
            )
            done = time.time()
            if response.status_code != 200:
                raise SystemExit(f"one-click answered {response.status_code}")
            answered[email] = (done, time.perf_counter() - started)

        await asyncio.gather(*(one(email, token) for email, token in targets))
    return answered


async def stream_exports(base: str, key: str, done: asyncio.Event) -> list[tuple[float, int]]:
    """Download the whole ledger's CSV export until ``done``; (seconds, bytes) per export."""
    exports: list[tuple[float, int]] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=600, headers=headers) as client:
        while not done.is_set():
            started = time.perf_counter()
            size = 0
            async with client.stream("GET", "/api/v1/consents/export?format=csv") as response:
                if response.status_code != 200:
                    raise SystemExit(f"export answered {response.status_code}")
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
            exports.append((time.perf_counter() - started, size))
    return exports


async def optouts_during_exports(
    base: str, key: str, targets: list[tuple[str, str]], spread: float, exporting: bool
) -> tuple[dict[str, tuple[float, float]], list[tuple[float, int]]]:
    if not exporting:
        return await fire_optouts(base, targets, spread), []
    done = asyncio.Event()
    exports = asyncio.create_task(stream_exports(base, key, done))
    await asyncio.sleep(1.0)  # the first export is under way before the first opt-out
    try:
        answered = await fire_optouts(base, targets, spread)
    finally:
        done.set()
    return answered, await exports


def subscribers(database_url: str) -> list[tuple[int, str, str]]:
    url = make_url(database_url)
    engine = create_engine(
        url.set(
            drivername="sqlite" if url.drivername.startswith("sqlite") else "postgresql+psycopg"
        )
    )
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, email, address_hash FROM subscribers ORDER BY id"))
        result = [(int(r[0]), str(r[1]), str(r[2])) for r in rows]
    engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--optouts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--database-url", help="PostgreSQL URL; default: a SQLite file")
    parser.add_argument("--workers", type=int, default=0, help="`shodaku worker` processes")
    parser.add_argument(
        "--export-events",
        type=int,
        default=0,
        help="ledger size; stream the whole ledger's consent export while sending",
    )
    args = parser.parse_args()
    if args.database_url and not args.workers:
        args.workers = 1

    sink_port = free_port()
    sink_log = Path(f"/tmp/shodaku-optout-sink-{sink_port}.log")
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink.py"), str(sink_port), str(sink_log)]
    )
    wait_port(sink_port)
    try:
        with Shodaku(
            postgres_url=args.database_url, smtp_port=sink_port, concurrency=args.concurrency
        ) as shodaku:
            world = shodaku.world()
            seed_consented(shodaku.database_url, world["list_id"], world["sender_id"], args.n)
            rows = subscribers(shodaku.database_url)
            if args.export_events > args.n:
                archive = shodaku.api(
                    "POST",
                    "/lists",
                    {
                        "name": "アーカイブ",
                        "slug": "archive",
                        "sender_id": world["sender_id"],
                        "purpose": "過去のお知らせ",
                    },
                )
                seed_consented(
                    shodaku.database_url,
                    archive["id"],
                    world["sender_id"],
                    args.export_events - args.n,
                    first=args.n,
                )
            shodaku.start_workers(args.workers)
            # Targets among those the campaign reaches last, so most are not yet mailed when
            # they opt out; whoever was mailed before their answer is counted apart, not failed.
            signer = TokenSigner([KEY], confirm_max_age=3600)
            chosen = random.sample(rows[len(rows) // 3 :], args.optouts)
            targets = [
                (email, signer.unsubscribe_token(sid, world["list_id"], address_hash))
                for sid, email, address_hash in chosen
            ]
            started = time.perf_counter()
            campaign_id = shodaku.start_campaign(world)
            answered, exports = asyncio.run(
                optouts_during_exports(
                    shodaku.base,
                    shodaku.key,
                    targets,
                    spread=args.n / 1500,
                    exporting=args.export_events > 0,
                )
            )
            body = shodaku.wait_sent(campaign_id)
            elapsed = time.perf_counter() - started
    finally:
        time.sleep(0.7)  # the sink flushes every 0.5 s
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=10)

    mailed: dict[str, list[float]] = {}
    for line in sink_log.read_text().splitlines():
        rcpt, at = line.split("\t")
        mailed.setdefault(rcpt, []).append(float(at))
    sink_log.unlink()
    violations = [
        email
        for email, (done, _) in answered.items()
        if any(t >= done for t in mailed.get(email, []))
    ]
    before = sum(
        1 for email, (done, _) in answered.items() if any(t < done for t in mailed.get(email, []))
    )
    latencies = [lat * 1000 for _, lat in answered.values()]
    kind = "PostgreSQL" if args.database_url else "SQLite"
    workers = args.workers or "in-process"
    print(f"database: {kind}, worker processes: {workers}")
    print(f"recipients: {args.n}, one-click opt-outs during sending: {len(answered)}")
    print(f"campaign: {args.n / elapsed:.0f} msg/s overall, stats {body['stats']}")
    print(f"opted out before being mailed: {len(answered) - before}; mailed before: {before}")
    print(f"SMTP transactions started after the opt-out was answered: {len(violations)}")
    print(
        f"opt-out latency during sending: p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms"
    )
    if exports:
        seconds = [s for s, _ in exports]
        print(
            f"consent exports streamed meanwhile ({args.export_events} events): {len(exports)}, "
            f"each {min(seconds):.1f}–{max(seconds):.1f} s, {exports[0][1] / 1e6:.1f} MB"
        )
    if violations:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
