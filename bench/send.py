"""Send throughput: Shodaku (real API, real workers, every check on) against a bare aiosmtplib
loop, both sending to Debian's smtp-sink on loopback, in the same run.

    .venv/bin/python bench/send.py                      # SQLite, `shodaku serve`, 20,000
    .venv/bin/python bench/send.py -n 5000
    .venv/bin/python bench/send.py --database-url postgresql+psycopg://postgres@127.0.0.1/test \
        --workers 2                                     # PostgreSQL, two `shodaku worker`s

Prints messages per second of both, their ratio, and the peak RSS of each Shodaku process.
Needs `smtp-sink` (Debian package postfix; no postfix daemon is started).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
from sqlalchemy import create_engine, insert, make_url, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.models import ConsentEvent, InstanceSecret, Subscriber, Subscription  # noqa: E402

BIN = Path(sys.executable).parent
KEY = "bench-secret-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink(port: int) -> subprocess.Popen[bytes]:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(sink).exists():
        raise SystemExit("smtp-sink not found: apt-get install postfix (the daemon is not needed)")
    args = [sink]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    process = subprocess.Popen([*args, f"127.0.0.1:{port}", "1024"])
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    raise SystemExit("smtp-sink did not start")


def bare_messages(n: int) -> list[bytes]:
    messages = []
    for i in range(n):
        m = EmailMessage()
        m["From"] = "news@shodaku.example"
        m["To"] = f"user{i:07d}@example.jp"
        m["Subject"] = "【お知らせ】承諾ニュース 12月号"
        m.set_content("こんにちは。今月のお知らせです。\n" * 20)
        m.add_alternative("<p>こんにちは。今月のお知らせです。</p>" * 20, subtype="html")
        messages.append(m.as_bytes())
    return messages


async def bare_loop(port: int, n: int, concurrency: int) -> float:
    """The baseline: pre-built messages, a pool of connections, nothing else."""
    messages = bare_messages(n)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def lane() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            await client.sendmail("news@shodaku.example", [f"user{i:07d}@example.jp"], messages[i])
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


def env_for(database_url: str, sink_port: int, base: str, concurrency: int) -> dict[str, str]:
    return {
        **os.environ,
        "SHODAKU_ENV": "prod",
        "SHODAKU_SECRET_KEYS": KEY,
        "SHODAKU_DATABASE_URL": database_url,
        "SHODAKU_BASE_URL": base,
        "SHODAKU_SMTP_HOST": "127.0.0.1",
        "SHODAKU_SMTP_PORT": str(sink_port),
        "SHODAKU_SEND_CONCURRENCY": str(concurrency),
        "SHODAKU_SIGNUP_LIMIT_PER_IP": "0",
        "SHODAKU_SIGNUP_LIMIT_PER_ADDRESS": "0",
    }


def api(base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base}/api/v1{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def seed_consented(database_url: str, list_id: int, sender_id: int, n: int) -> None:
    """N subscribers with a recorded written_notice consent each, inserted in bulk (the bench
    measures sending, not consent capture)."""
    url = make_url(database_url)
    sync_url = url.set(
        drivername="sqlite" if url.drivername.startswith("sqlite") else "postgresql+psycopg"
    )
    engine = create_engine(sync_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        key = conn.execute(
            select(InstanceSecret.value).where(InstanceSecret.name == "address_key")
        ).scalar_one()
        for start in range(0, n, 5000):
            emails = [f"user{i:07d}@example.jp" for i in range(start, min(n, start + 5000))]
            conn.execute(
                insert(Subscriber),
                [
                    {
                        "email": e,
                        "address_hash": hmac.new(
                            key.encode(), e.encode(), hashlib.sha256
                        ).hexdigest(),
                        "name": f"利用者{e[4:11]}",
                        "attributes": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for e in emails
                ],
            )
            ids = dict(
                conn.execute(
                    select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(emails))
                ).all()
            )
            conn.execute(
                insert(ConsentEvent),
                [
                    {
                        "kind": "grant",
                        "email": e,
                        "subscriber_id": ids[e],
                        "sender_id": sender_id,
                        "list_id": list_id,
                        "basis": "written_notice",
                        "method": "business_card",
                        "occurred_at": now,
                        "obtained_at": now,
                        "evidence": {
                            "received_on": "2026-10-01",
                            "received_by": "bench",
                            "document_ref": e[4:11],
                        },
                        "recorded_by": "bench",
                        "created_at": now,
                    }
                    for e in emails
                ],
            )
            events = dict(
                conn.execute(
                    select(ConsentEvent.subscriber_id, ConsentEvent.id).where(
                        ConsentEvent.subscriber_id.in_(list(ids.values()))
                    )
                ).all()
            )
            conn.execute(
                insert(Subscription),
                [
                    {
                        "subscriber_id": sid,
                        "list_id": list_id,
                        "status": "active",
                        "basis": "written_notice",
                        "grant_event_id": events[sid],
                        "requires_confirmation": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for sid in ids.values()
                ],
            )
    engine.dispose()


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def prepare_postgres(database_url: str) -> str:
    url = make_url(database_url).set(drivername="postgresql+psycopg")
    name = f"{url.database}_shodaku_bench"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def run_shodaku(args: argparse.Namespace, sink_port: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="shodaku-bench-"))
    if args.database_url:
        database_url = prepare_postgres(args.database_url)
    else:
        database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    port = free_port()
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
    workers: list[subprocess.Popen[bytes]] = []
    try:
        wait_http(f"{base}/healthz")
        sender = api(
            base,
            key,
            "POST",
            "/senders",
            {
                "name": "株式会社承諾",
                "postal_address": "〒100-0001 東京都千代田区千代田1-1",
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
                "purpose": "新製品のお知らせ",
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
                "name": "monthly",
                "subject": "【お知らせ】{{ list.name }} 12月号",
                "html": "<html><body><h1>{{ list.name }}</h1><p>{{ name }}様</p>"
                + "<p>こんにちは。今月のお知らせです。</p>" * 20
                + "</body></html>",
            },
        )
        seed_consented(database_url, mailing_list["id"], sender["id"], args.n)
        for _ in range(args.workers):
            workers.append(
                subprocess.Popen(
                    [BIN / "shodaku", "worker"],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        if workers:
            time.sleep(3)  # let them register
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
        while True:
            body = api(base, key, "GET", f"/campaigns/{campaign['id']}")
            if body["status"] == "sent":
                break
            if time.perf_counter() - started > args.timeout:
                raise SystemExit(f"not finished after {args.timeout}s: {body['stats']}")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        return {
            "rate": args.n / elapsed,
            "elapsed": elapsed,
            "stats": body["stats"],
            "rss_serve": peak_rss_mb(serve.pid),
            "rss_workers": [peak_rss_mb(w.pid) for w in workers],
        }
    finally:
        for process in [*workers, serve]:
            process.send_signal(signal.SIGTERM)
        for process in [*workers, serve]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=20_000, help="recipients (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=8, help="SMTP connections (default 8)")
    parser.add_argument("--database-url", help="PostgreSQL URL; default: a SQLite file")
    parser.add_argument("--workers", type=int, default=0, help="`shodaku worker` processes")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if args.database_url and not args.workers:
        args.workers = 1
    sink_port = free_port()
    sink = start_sink(sink_port)
    try:
        bare = asyncio.run(bare_loop(sink_port, args.n, args.concurrency))
        result = run_shodaku(args, sink_port)
    finally:
        sink.terminate()
        sink.wait()
    kind = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"recipients: {args.n}, SMTP connections: {args.concurrency}, database: {kind}, "
        f"worker processes: {args.workers or 'in-process'}"
    )
    print(f"bare aiosmtplib loop: {bare:8.0f} msg/s")
    print(
        f"shodaku:              {result['rate']:8.0f} msg/s  ({result['elapsed']:.1f} s, stats {result['stats']})"
    )
    print(f"ratio shodaku/bare:   {result['rate'] / bare:8.2f}")
    print(
        f"peak RSS: serve {result['rss_serve']:.0f} MB"
        + "".join(f", worker {rss:.0f} MB" for rss in result["rss_workers"])
    )


if __name__ == "__main__":
    main()
