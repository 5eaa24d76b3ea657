"""Opt-out under load: while a campaign sends at full speed, recipients not yet mailed opt out
through the RFC 8058 one-click endpoint at random moments. Checks that none of them receives a
message whose SMTP transaction started after their opt-out was answered, and reports the
latency of the opt-out requests during sending.

    .venv/bin/python bench/optout.py               # 20,000 recipients, 200 opt-outs, SQLite
    .venv/bin/python bench/optout.py -n 5000 --optouts 100

The sink is bench/sink.py, which records when each recipient's SMTP transaction started.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from send import BIN, KEY, ROOT, api, env_for, free_port, seed_consented, wait_http

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--optouts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="shodaku-optout-"))
    sink_port, port = free_port(), free_port()
    sink_log = workdir / "sink.log"
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink.py"), str(sink_port), str(sink_log)]
    )
    database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    base = f"http://127.0.0.1:{port}"
    env = env_for(database_url, sink_port, base, args.concurrency)
    subprocess.run([BIN / "shodaku", "migrate"], env=env, check=True, cwd=ROOT, capture_output=True)
    key = (
        subprocess.run(
            [BIN / "shodaku", "apikey", "create", "--name", "bench"],
            env=env,
            check=True,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    log = (workdir / "serve.log").open("wb")
    serve = subprocess.Popen(
        [BIN / "shodaku", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"{base}/healthz")
        sender = api(
            base,
            key,
            "POST",
            "/senders",
            {
                "name": "株式会社承諾",
                "postal_address": "東京都千代田区千代田1-1",
                "contact_email": "support@shodaku.example",
                "from_email": "news@shodaku.example",
            },
        )
        mailing_list = api(
            base,
            key,
            "POST",
            "/lists",
            {
                "name": "承諾ニュース",
                "slug": "news",
                "sender_id": sender["id"],
                "purpose": "お知らせ",
                "double_opt_in": True,
                "language": "ja",
            },
        )
        template = api(
            base,
            key,
            "POST",
            "/templates",
            {
                "name": "m",
                "subject": "【お知らせ】{{ list.name }}",
                "html": "<p>{{ name }}様</p>" + "<p>今月のお知らせです。</p>" * 20,
            },
        )
        seed_consented(database_url, mailing_list["id"], sender["id"], args.n)
        with sqlite3.connect(workdir / "bench.db") as db:
            rows = db.execute(
                "SELECT id, email, address_hash FROM subscribers ORDER BY id"
            ).fetchall()
        # Targets among those the campaign reaches last, so most are not yet mailed when they
        # opt out; whoever was mailed before their answer is counted separately, not a failure.
        signer = TokenSigner([KEY], confirm_max_age=3600)
        pool = rows[len(rows) // 3 :]
        chosen = random.sample(pool, args.optouts)
        targets = [
            (email, signer.unsubscribe_token(sid, mailing_list["id"], address_hash))
            for sid, email, address_hash in chosen
        ]
        campaign = api(
            base,
            key,
            "POST",
            "/campaigns",
            {
                "name": "bench",
                "list_id": mailing_list["id"],
                "template_id": template["id"],
            },
        )
        started = time.perf_counter()
        api(base, key, "POST", f"/campaigns/{campaign['id']}/send")
        spread = args.n / 1500  # about the campaign's duration at full speed
        answered = asyncio.run(fire_optouts(base, targets, spread))
        while api(base, key, "GET", f"/campaigns/{campaign['id']}")["status"] != "sent":
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        stats = api(base, key, "GET", f"/campaigns/{campaign['id']}")["stats"]
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        time.sleep(0.7)  # the sink flushes every 0.5 s
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=10)
        log.close()

    mailed: dict[str, list[float]] = {}
    for line in sink_log.read_text().splitlines():
        rcpt, at = line.split("\t")
        mailed.setdefault(rcpt, []).append(float(at))
    violations = [
        email
        for email, (done, _) in answered.items()
        if any(t >= done for t in mailed.get(email, []))
    ]
    before = sum(
        1 for email, (done, _) in answered.items() if any(t < done for t in mailed.get(email, []))
    )
    latencies = [lat * 1000 for _, lat in answered.values()]
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"recipients: {args.n}, one-click opt-outs during sending: {len(answered)}")
    print(f"campaign: {args.n / elapsed:.0f} msg/s overall, stats {stats}")
    print(
        f"opted out before being mailed: {len(answered) - before}; mailed before their answer: {before}"
    )
    print(f"SMTP transactions started after the opt-out was answered: {len(violations)}")
    print(
        f"opt-out latency during sending: p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms"
    )
    if violations:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
