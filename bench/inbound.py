"""What comes back, at speed: delivery status notifications sent to the inbound listener of a
real ``shodaku serve`` (SHODAKU_INBOUND_PORT) while a campaign sends, against a bare SMTP
receiver that does nothing with them (aiosmtpd, in this process) as the baseline; and the
one-click opt-outs answered meanwhile.

    .venv/bin/python bench/inbound.py                      # SQLite, 2,000 DSNs
    .venv/bin/python bench/inbound.py --dsns 5000 --database-url postgresql+psycopg://postgres@127.0.0.1/test

Each DSN is a hard bounce of a different delivery that really went out: the listener parses it,
records the event, suppresses the address and stops its pending deliveries, one transaction
each. At the end the bench checks that every one of them is suppressed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

import aiosmtplib
import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.tokens import FeedbackTokens, TokenSigner  # noqa: E402
from bench.harness import KEY, Shodaku, free_port, seed_consented, start_smtp_sink  # noqa: E402
from bench.optout import percentile  # noqa: E402
from tests.feedback.corpus import dsn  # noqa: E402

DOMAIN = "bounces.bench.example"


class _Accept:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


def _sync(database_url: str):
    url = make_url(database_url)
    return create_engine(
        url.set(
            drivername="sqlite" if url.drivername.startswith("sqlite") else "postgresql+psycopg"
        )
    )


def sent_deliveries(database_url: str, n: int, timeout: float = 600) -> list[tuple[int, str]]:
    """Wait until ``n`` deliveries are sent; (delivery id, address) of the first ``n``."""
    engine = _sync(database_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT d.id, s.email FROM deliveries d JOIN subscribers s "
                        "ON s.id = d.subscriber_id WHERE d.status = 'sent' ORDER BY d.id LIMIT :n"
                    ),
                    {"n": n},
                ).all()
            if len(rows) >= n:
                return [(int(r[0]), str(r[1])) for r in rows]
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(rows)} deliveries sent after {timeout}s")
            time.sleep(0.2)
    finally:
        engine.dispose()


async def blast(port: int, messages: list[tuple[str, bytes]], connections: int) -> float:
    """Send every (recipient, message) over ``connections`` SMTP connections; seconds taken."""
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in messages:
        queue.put_nowait(item)

    async def one_connection() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
        async with client:
            while not queue.empty():
                recipient, message = queue.get_nowait()
                await client.sendmail("", [recipient], message)

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return time.perf_counter() - started


async def optouts_meanwhile(base: str, targets: list[str], done: asyncio.Event) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for token in targets:
            if done.is_set():
                break
            await asyncio.sleep(random.uniform(0.02, 0.1))
            started = time.perf_counter()
            response = await client.post(
                f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
            )
            if response.status_code != 200:
                raise SystemExit(f"one-click answered {response.status_code}")
            latencies.append(time.perf_counter() - started)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsns", type=int, default=2000)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL; default SQLite")
    args = parser.parse_args()

    sink_port, inbound_port = free_port(), free_port()
    sink = start_smtp_sink(sink_port)
    env = {"SHODAKU_BOUNCE_DOMAIN": DOMAIN, "SHODAKU_INBOUND_PORT": str(inbound_port)}
    try:
        with Shodaku(postgres_url=args.database_url, smtp_port=sink_port, env=env) as shodaku:
            world = shodaku.world()
            seed_consented(
                shodaku.database_url, world["list_id"], world["sender_id"], args.recipients
            )
            campaign_id = shodaku.start_campaign(world)
            bounced = sent_deliveries(shodaku.database_url, args.dsns)
            tokens = FeedbackTokens([KEY])
            messages = []
            for delivery_id, email in bounced:
                verp = f"bounce+{tokens.delivery(delivery_id)}@{DOMAIN}"
                messages.append(
                    (verp, dsn(verp, recipient=email, message_id=f"<bench-{delivery_id}@mx>"))
                )
            # One-click opt-outs of recipients not bounced, while the DSNs arrive.
            engine = _sync(shodaku.database_url)
            with engine.connect() as conn:
                others = conn.execute(
                    text("SELECT id, address_hash FROM subscribers ORDER BY id DESC LIMIT 2000")
                ).all()
            engine.dispose()
            signer = TokenSigner([KEY], confirm_max_age=3600)
            optout_tokens = [
                signer.unsubscribe_token(int(i), world["list_id"], h) for i, h in others
            ]

            baseline_port = free_port()
            controller = Controller(_Accept(), hostname="127.0.0.1", port=baseline_port)
            controller.start()
            try:
                bare = asyncio.run(blast(baseline_port, messages, args.connections))
            finally:
                controller.stop()

            async def measured() -> tuple[float, list[float]]:
                done = asyncio.Event()
                optouts = asyncio.create_task(optouts_meanwhile(shodaku.base, optout_tokens, done))
                seconds = await blast(inbound_port, messages, args.connections)
                done.set()
                return seconds, await optouts

            seconds, latencies = asyncio.run(measured())
            status = shodaku.api("GET", f"/campaigns/{campaign_id}")["status"]
            engine = _sync(shodaku.database_url)
            with engine.connect() as conn:
                suppressed = conn.execute(
                    text("SELECT count(*) FROM suppressions WHERE reason = 'hard_bounce'")
                ).scalar_one()
                events = conn.execute(text("SELECT count(*) FROM feedback_events")).scalar_one()
            engine.dispose()
    finally:
        sink.terminate()
        sink.wait()

    database = "PostgreSQL" if args.database_url else "SQLite"
    rate, bare_rate = args.dsns / seconds, args.dsns / bare
    print(f"database: {database}; campaign of {args.recipients} recipients {status} meanwhile")
    print(f"DSNs through the listener: {args.dsns} in {seconds:.2f} s = {rate:,.0f}/s")
    print(f"bare SMTP receiver, same messages: {bare_rate:,.0f}/s; ratio {rate / bare_rate:.2f}")
    print(f"feedback events {events}, hard-bounce suppressions {suppressed} (expected {args.dsns})")
    if latencies:
        print(
            f"one-click opt-outs meanwhile: {len(latencies)}, p50 "
            f"{percentile(latencies, 50) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms"
        )
    if suppressed != args.dsns or events != args.dsns:
        raise SystemExit("not every DSN was acted on")


if __name__ == "__main__":
    main()
