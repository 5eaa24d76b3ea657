"""Scale: a 1,000,000-recipient list on PostgreSQL. Measures the time to materialise the
campaign's deliveries (one row per recipient, through the consent gate) and the peak RSS of the
API process and of a worker while the campaign sends (for --send-seconds, then it is cancelled).

    .venv/bin/python bench/scale.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
    .venv/bin/python bench/scale.py --database-url … -n 200000 --send-seconds 20

Baseline printed beside it: a bare INSERT … SELECT of the same number of rows into a scratch
table in the same database, in the same run (the floor for materialising anything).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from send import (
    BIN,
    ROOT,
    api,
    env_for,
    free_port,
    prepare_postgres,
    start_sink,
    wait_http,
)

from app.models import InstanceSecret


def seed(database_url: str, list_id: int, sender_id: int, n: int) -> float:
    """N consented subscribers by set-based SQL (the ORM would take longer than the bench)."""
    engine = create_engine(database_url)
    started = time.perf_counter()
    with engine.begin() as conn:
        key = conn.execute(
            select(InstanceSecret.value).where(InstanceSecret.name == "address_key")
        ).scalar_one()
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgcrypto"))
        conn.execute(
            text(
                """
                INSERT INTO subscribers (email, address_hash, name, attributes, created_at, updated_at)
                SELECT 'user' || lpad(g::text, 7, '0') || '@example.jp',
                       encode(hmac('user' || lpad(g::text, 7, '0') || '@example.jp', :key, 'sha256'), 'hex'),
                       '利用者' || g, '{}'::jsonb, now(), now()
                FROM generate_series(1, :n) AS g
                """
            ),
            {"key": key, "n": n},
        )
        conn.execute(
            text(
                """
                INSERT INTO consent_events (kind, email, subscriber_id, sender_id, list_id, basis,
                    method, occurred_at, obtained_at, evidence, recorded_by, created_at)
                SELECT 'grant', s.email, s.id, :sender, :list, 'written_notice', 'business_card',
                       now(), now(),
                       jsonb_build_object('received_on', '2026-10-01', 'received_by', 'bench',
                                          'document_ref', s.id::text),
                       'bench', now()
                FROM subscribers s
                """
            ),
            {"sender": sender_id, "list": list_id},
        )
        conn.execute(
            text(
                """
                INSERT INTO subscriptions (subscriber_id, list_id, status, basis, grant_event_id,
                    requires_confirmation, created_at, updated_at)
                SELECT e.subscriber_id, :list, 'active', 'written_notice', e.id, false, now(), now()
                FROM consent_events e WHERE e.list_id = :list
                """
            ),
            {"list": list_id},
        )
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def bare_insert_select(database_url: str, n: int) -> float:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        # The same shape as the deliveries table: logged, with the unique (campaign,
        # subscriber) constraint that makes materialising idempotent.
        conn.execute(text("DROP TABLE IF EXISTS bench_scratch"))
        conn.execute(
            text(
                "CREATE TABLE bench_scratch (campaign_id int, subscriber_id int, status text,"
                " attempts int, created_at timestamptz, updated_at timestamptz,"
                " UNIQUE (campaign_id, subscriber_id))"
            )
        )
        started = time.perf_counter()
        conn.execute(
            text(
                "INSERT INTO bench_scratch SELECT 1, id, 'queued', 0, now(), now() FROM subscribers"
                " ON CONFLICT DO NOTHING"
            ),
        )
        elapsed = time.perf_counter() - started
        conn.execute(text("DROP TABLE bench_scratch"))
    engine.dispose()
    return elapsed


class RssSampler(threading.Thread):
    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0.0)
        self.running = True

    def run(self) -> None:
        while self.running:
            for name, pid in self.pids.items():
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak[name] = max(self.peak[name], int(line.split()[1]) / 1024)
                except OSError:
                    pass
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        required=True,
        help="PostgreSQL URL (a scratch database is made beside it)",
    )
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--send-seconds", type=float, default=30)
    args = parser.parse_args()

    database_url = prepare_postgres(args.database_url)
    sink_port, port = free_port(), free_port()
    sink = start_sink(sink_port)
    base = f"http://127.0.0.1:{port}"
    env = env_for(database_url, sink_port, base, 8)
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
    serve = subprocess.Popen(
        [BIN / "shodaku", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
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
                "html": "<p>{{ name }}様</p>",
            },
        )
        seeded = seed(database_url, mailing_list["id"], sender["id"], args.n)
        bare = bare_insert_select(database_url, args.n)
        worker = subprocess.Popen(
            [BIN / "shodaku", "worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sampler = RssSampler({"serve": serve.pid, "worker": worker.pid})
        sampler.start()
        time.sleep(3)
        campaign = api(
            base,
            key,
            "POST",
            "/campaigns",
            {
                "name": "scale",
                "list_id": mailing_list["id"],
                "template_id": template["id"],
            },
        )
        started = time.perf_counter()
        api(base, key, "POST", f"/campaigns/{campaign['id']}/send")
        engine = create_engine(database_url)
        while True:
            with engine.connect() as conn:
                done = conn.execute(
                    text("SELECT materialized FROM campaigns WHERE id = :id"),
                    {"id": campaign["id"]},
                ).scalar()
            if done:
                break
            time.sleep(0.2)
        materialised = time.perf_counter() - started
        time.sleep(max(0.0, args.send_seconds - materialised))
        body = api(base, key, "GET", f"/campaigns/{campaign['id']}")
        sent_while = body["stats"]["sent"]
        sending_for = time.perf_counter() - started
        api(base, key, "POST", f"/campaigns/{campaign['id']}/cancel")
        sampler.running = False
        engine.dispose()
    finally:
        for process in (worker, serve):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        sink.terminate()
        sink.wait()
    print(f"recipients: {args.n} (seeded in {seeded:.1f} s)")
    print(f"bare INSERT…SELECT of {args.n} rows: {bare:.2f} s")
    print(
        f"materialising the deliveries through the gate: {materialised:.1f} s "
        f"(ratio to bare {materialised / bare:.1f}), while sending"
    )
    print(
        f"sent in the first {sending_for:.0f} s: {sent_while} ({sent_while / sending_for:.0f} msg/s, one worker)"
    )
    print(
        f"peak RSS: API process {sampler.peak['serve']:.0f} MB, worker {sampler.peak['worker']:.0f} MB"
    )


if __name__ == "__main__":
    main()
