"""What every benchmark needs: a real Shodaku (migrate, API key, `shodaku serve`, workers) on a
scratch database, the sender/list/template a campaign needs, and consented recipients in bulk."""

from __future__ import annotations

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
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, make_url, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.models import ConsentEvent, InstanceSecret, Subscriber, Subscription  # noqa: E402

BIN = Path(sys.executable).parent
KEY = "bench-secret-key-0123456789abcdef"
NEWSLETTER_HTML = (
    "<html><body><h1>{{ list.name }}</h1><p>{{ name }}様</p>"
    + "<p>こんにちは。今月のお知らせです。</p>" * 20
    + "</body></html>"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def start_smtp_sink(port: int) -> subprocess.Popen[bytes]:
    """Debian's smtp-sink (package postfix; no postfix daemon is started)."""
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(sink).exists():
        raise SystemExit("smtp-sink not found: apt-get install postfix (the daemon is not needed)")
    args = [sink, *(["-u", "nobody"] if os.geteuid() == 0 else [])]
    process = subprocess.Popen([*args, f"127.0.0.1:{port}", "1024"])
    wait_port(port)
    return process


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
    """A scratch database beside the one named, dropped and created anew."""
    url = make_url(database_url).set(drivername="postgresql+psycopg")
    name = f"{url.database}_shodaku_bench"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of a process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def seed_consented(
    database_url: str, list_id: int, sender_id: int, n: int, *, first: int = 0
) -> None:
    """N subscribers, each with a recorded written_notice consent, inserted in bulk (the benches
    measure sending, not consent capture). Addresses are numbered from ``first``."""
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
        for start in range(first, first + n, 5000):
            emails = [f"user{i:07d}@example.jp" for i in range(start, min(first + n, start + 5000))]
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


class Shodaku:
    """A running Shodaku: `shodaku migrate`, an API key, `shodaku serve`, optional workers.

    Use as a context manager; everything it started is stopped and its scratch files removed.
    """

    def __init__(
        self,
        *,
        postgres_url: str | None = None,
        smtp_port: int | None = None,
        concurrency: int = 8,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="shodaku-bench-"))
        self.database_url = (
            prepare_postgres(postgres_url)
            if postgres_url
            else f"sqlite+aiosqlite:///{self.workdir / 'bench.db'}"
        )
        self.sqlite_path = None if postgres_url else self.workdir / "bench.db"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SHODAKU_ENV": "prod",
            "SHODAKU_SECRET_KEYS": KEY,
            "SHODAKU_DATABASE_URL": self.database_url,
            "SHODAKU_BASE_URL": self.base,
            "SHODAKU_OUTBOX_DIR": str(self.workdir / "outbox"),
            "SHODAKU_SEND_CONCURRENCY": str(concurrency),
            "SHODAKU_SIGNUP_LIMIT_PER_IP": "0",
            "SHODAKU_SIGNUP_LIMIT_PER_ADDRESS": "0",
            # Throughput benches measure the work; the answer floor would cap it (signup_timing.py
            # measures with it on).
            "SHODAKU_SIGNUP_ANSWER_FLOOR": "0",
            **(
                {"SHODAKU_SMTP_HOST": "127.0.0.1", "SHODAKU_SMTP_PORT": str(smtp_port)}
                if smtp_port
                else {}
            ),
            **(env or {}),
        }
        self.key = ""
        self.serve: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._log = (self.workdir / "shodaku.log").open("wb")

    def __enter__(self) -> Shodaku:
        self._run("migrate")
        self.key = self._run("apikey", "create", "--name", "bench").strip().splitlines()[-1]
        self.serve = self._spawn("serve", "--host", "127.0.0.1", "--port", str(self.port))
        wait_http(f"{self.base}/healthz")
        return self

    def __exit__(self, *_exc: object) -> None:
        processes = [*self.workers, *([self.serve] if self.serve else [])]
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self, *args: str) -> str:
        return subprocess.run(
            [BIN / "shodaku", *args],
            env=self.env,
            check=True,
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [BIN / "shodaku", *args],
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def start_workers(self, n: int) -> None:
        self.workers += [self._spawn("worker") for _ in range(n)]
        if n:
            time.sleep(3)  # let them register with procrastinate

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}/api/v1{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def world(self, html: str = NEWSLETTER_HTML) -> dict[str, int]:
        """A sender, a double opt-in list `news` and a template, through the API."""
        sender = self.api(
            "POST",
            "/senders",
            {
                "name": "株式会社承諾",
                "postal_address": "〒100-0001 東京都千代田区千代田1-1",
                "contact_email": "support@shodaku.example",
                "from_email": "news@shodaku.example",
            },
        )
        mailing_list = self.api(
            "POST",
            "/lists",
            {
                "name": "承諾ニュース",
                "slug": "news",
                "sender_id": sender["id"],
                "purpose": "新製品とイベントのお知らせ",
                "double_opt_in": True,
                "language": "ja",
            },
        )
        template = self.api(
            "POST",
            "/templates",
            {
                "name": "monthly",
                "subject": "【お知らせ】{{ list.name }} 12月号",
                "html": html,
            },
        )
        return {
            "sender_id": sender["id"],
            "list_id": mailing_list["id"],
            "template_id": template["id"],
        }

    def start_campaign(self, world: dict[str, int]) -> int:
        campaign = self.api(
            "POST",
            "/campaigns",
            {
                "name": "bench",
                "list_id": world["list_id"],
                "template_id": world["template_id"],
            },
        )
        self.api("POST", f"/campaigns/{campaign['id']}/send")
        return int(campaign["id"])

    def wait_sent(self, campaign_id: int, timeout: float = 1800) -> dict[str, Any]:
        started = time.perf_counter()
        while True:
            body: dict[str, Any] = self.api("GET", f"/campaigns/{campaign_id}")
            if body["status"] == "sent":
                return body
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"not finished after {timeout}s: {body['stats']}")
            # Every poll costs the server a stats query: a dashboard's pace, not a busy loop's.
            time.sleep(float(os.environ.get("BENCH_POLL", "0.5")))
