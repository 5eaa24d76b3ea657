"""Signup throughput: requests/s of POST /subscribe/{slug} (JSON, a new address each time, double
opt-in: grant event + pending subscription + outbox row per request) with wrk on loopback, against
GET /healthz on the same server in the same run as the baseline. Rate limits are off for the run.

    .venv/bin/python bench/signup.py                  # SQLite
    .venv/bin/python bench/signup.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Needs Debian's wrk. The outbox sender is running too (mail goes to .eml files in a temp dir).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Shodaku

LUA = r"""
-- Each wrk thread numbers its own requests under a prefix of its own: every address is new.
local threads = {}
function setup(thread)
  thread:set("prefix", tostring(#threads))
  table.insert(threads, thread)
end
counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"email": "load-%s-%d@example.jp", "consent": true, "consent_text": "承諾ニュースの受信に同意します"}',
    prefix, counter)
  return wrk.format("POST", "/subscribe/news", {["Content-Type"] = "application/json"}, body)
end
"""


def run_wrk(url: str, seconds: int, connections: int, script: Path | None) -> tuple[float, str]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"wrk saw {non2xx.group(1)} error responses:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rate is not None, out
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    return float(rate.group(1)), (p99.group(1) if p99 else "?")


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="PostgreSQL URL; default: a SQLite file")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    with Shodaku(postgres_url=args.database_url) as shodaku:
        shodaku.world()
        script = shodaku.workdir / "signup.lua"
        script.write_text(LUA, encoding="utf-8")
        health, health_p99 = run_wrk(
            f"{shodaku.base}/healthz", args.seconds, args.connections, None
        )
        signup, signup_p99 = run_wrk(shodaku.base, args.seconds, args.connections, script)
        if shodaku.sqlite_path is not None:
            with sqlite3.connect(shodaku.sqlite_path) as db:
                pending = db.execute(
                    "SELECT count(*) FROM subscriptions WHERE status = 'pending'"
                ).fetchone()[0]
            print(f"stored: {pending} pending subscriptions")
    kind = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"database: {kind}, wrk: 2 threads, {args.connections} connections, {args.seconds} s each"
    )
    print(f"GET /healthz (baseline):  {health:8.0f} req/s  p99 {health_p99}")
    print(f"POST /subscribe (JSON):   {signup:8.0f} req/s  p99 {signup_p99}")
    print(f"ratio signup/healthz:     {signup / health:8.2f}")


if __name__ == "__main__":
    main()
