"""Does a signup's answer time tell a known address from an unknown one? (CC-3, no oracle)

Against a real `shodaku serve` (loopback HTTP, one keep-alive connection), POST /subscribe/news
as JSON, alternating in random order between addresses already active on the double opt-in list
and addresses never seen. Prints the median and p90 answer time of each, and their ratio, first
with the answer floor off (the work itself) and then with it at the default.

    .venv/bin/python bench/signup_timing.py                 # SQLite
    .venv/bin/python bench/signup_timing.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Shodaku

from app.config import Settings

WORDING = "承諾ニュースの受信に同意します"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _measure(shodaku: Shodaku, known: list[str], rounds: int) -> dict[str, list[float]]:
    conn = http.client.HTTPConnection("127.0.0.1", shodaku.port, timeout=30)
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    order = ["known", "unknown"] * rounds
    random.Random(7).shuffle(order)
    for n, kind in enumerate(order):
        email = random.choice(known) if kind == "known" else f"new-{n}@example.jp"
        body = json.dumps({"email": email, "consent": True, "consent_text": WORDING})
        started = time.perf_counter()
        conn.request("POST", "/subscribe/news", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        times[kind].append(time.perf_counter() - started)
        if response.status != 202:
            raise SystemExit(f"unexpected answer {response.status}")
    conn.close()
    return times


def run(database_url: str | None, floor: float, rounds: int, known_count: int) -> None:
    with Shodaku(postgres_url=database_url, env={"SHODAKU_SIGNUP_ANSWER_FLOOR": str(floor)}) as s:
        world = s.world()
        known = [f"known-{n}@example.jp" for n in range(known_count)]
        obtained = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        for email in known:
            s.api(
                "POST",
                f"/lists/{world['list_id']}/consents",
                {
                    "email": email,
                    "basis": "opt_in",
                    "method": "paper_form",
                    "obtained_at": obtained,
                    "evidence": {"source": "展示会ブースの申込用紙"},
                    "consent_text": WORDING,
                },
            )
        _measure(s, known, 20)  # warm up both paths
        times = _measure(s, known, rounds)
    label = f"floor {floor:.3f} s" if floor else "floor off"
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    p90 = {k: _percentile(v, 0.9) * 1000 for k, v in times.items()}
    print(
        f"{label:>16}: known median {med['known']:7.2f} ms p90 {p90['known']:7.2f} ms | "
        f"unknown median {med['unknown']:7.2f} ms p90 {p90['unknown']:7.2f} ms | "
        f"known/unknown median {med['known'] / med['unknown']:.3f} "
        f"p90 {p90['known'] / p90['unknown']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--rounds", type=int, default=300, help="signups of each kind")
    parser.add_argument("--known", type=int, default=50, help="active addresses to pick from")
    args = parser.parse_args()
    default_floor = Settings.model_fields["signup_answer_floor"].default
    print(f"{'SQLite' if args.database_url is None else 'PostgreSQL'}, {args.rounds} signups each")
    for floor in (0.0, default_floor):
        run(args.database_url, floor, args.rounds, args.known)


if __name__ == "__main__":
    main()
