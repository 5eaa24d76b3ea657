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
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Shodaku, free_port, start_smtp_sink

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
    parser.add_argument("--database-url", required=True, help="PostgreSQL (a scratch db is made)")
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--send-seconds", type=float, default=30)
    args = parser.parse_args()

    sink_port = free_port()
    sink = start_smtp_sink(sink_port)
    try:
        with Shodaku(postgres_url=args.database_url, smtp_port=sink_port) as shodaku:
            world = shodaku.world(html="<p>{{ name }}様</p>")
            seeded = seed(shodaku.database_url, world["list_id"], world["sender_id"], args.n)
            bare = bare_insert_select(shodaku.database_url, args.n)
            shodaku.start_workers(1)
            assert shodaku.serve is not None
            sampler = RssSampler({"serve": shodaku.serve.pid, "worker": shodaku.workers[0].pid})
            sampler.start()
            started = time.perf_counter()
            campaign_id = shodaku.start_campaign(world)
            engine = create_engine(shodaku.database_url)
            while True:
                with engine.connect() as conn:
                    done = conn.execute(
                        text("SELECT materialized FROM campaigns WHERE id = :id"),
                        {"id": campaign_id},
                    ).scalar()
                if done:
                    break
                time.sleep(0.2)
            materialised = time.perf_counter() - started
            engine.dispose()
            time.sleep(max(0.0, args.send_seconds - materialised))
            sent_while = shodaku.api("GET", f"/campaigns/{campaign_id}")["stats"]["sent"]
            sending_for = time.perf_counter() - started
            shodaku.api("POST", f"/campaigns/{campaign_id}/cancel")
            sampler.running = False
    finally:
        sink.terminate()
        sink.wait()
    print(f"recipients: {args.n} (seeded in {seeded:.1f} s)")
    print(f"bare INSERT…SELECT of {args.n} rows into a table shaped like deliveries: {bare:.2f} s")
    print(
        f"materialising the deliveries through the gate, while sending: {materialised:.1f} s "
        f"(ratio to bare {materialised / bare:.1f})"
    )
    print(
        f"sent in the first {sending_for:.0f} s: {sent_while} "
        f"({sent_while / sending_for:.0f} msg/s, one worker)"
    )
    print(
        f"peak RSS while sending: API process {sampler.peak['serve']:.0f} MB, "
        f"worker {sampler.peak['worker']:.0f} MB"
    )


if __name__ == "__main__":
    main()
