"""Hostile inputs (DS-6): the time `shodaku serve` takes to answer each, against a trivial
request (GET /healthz) in the same run, and the slowest /healthz answered while it was in
flight (what every other visitor waits).

    .venv/bin/python bench/hostile_inputs.py
    .venv/bin/python bench/hostile_inputs.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Each case must be answered with a 4xx (or the 201 its name says); any other answer is listed
at the end and the bench exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Shodaku

TEMPLATES = {
    "30 KB {% raw %} of {{ (valid: 201)": "{% raw %}" + "{{" * 15_000 + "{% endraw %}",
    "500 KB template, 50,000 tags": "{{ name }}" * 50_000,
    "{{ 1 + 1 + ... }} 120,000 deep": "{{ 1" + " + 1" * 120_000 + " }}",
    "'%999999999s' % name": "{{ '%999999999s' % name }}",
    "'{:>999999999}'.format(name)": "{{ '{:>999999999}'.format(name) }}",
    "'{0}' * 400,000 .format": "{{ ('{0}' * 400000).format('x' * 1000) }}",
    "'a' * 10**9": "{{ 'a' * 10**9 }}",
    "~ doubling in a loop": (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
    ),
    "a list of 1 MB strings printed": "{{ ['x' * 1000000] * 1000 }}",
    "tojson of it": "{{ (['<' * 1000000] * 1000)|tojson }}",
    "range|join(1 MB)": "{{ range(99999)|join('x' * 1000000) }}",
    "indent(9999) of 900 lines": "{{ ('a\n' * 900)|indent(9999) }}",
    "name|center(10**9)": "{{ name|center(10**9) }}",
    "2**40 macro calls": (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    ),
}


def request(shodaku: Shodaku, method: str, path: str, body: bytes | None, content_type: str) -> int:
    headers = {"Authorization": f"Bearer {shodaku.key}", "Content-Type": content_type}
    req = urllib.request.Request(f"{shodaku.base}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=600) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


def health(shodaku: Shodaku) -> float:
    start = time.perf_counter()
    assert request(shodaku, "GET", "/healthz", None, "text/plain") == 200
    return time.perf_counter() - start


def timed(
    shodaku: Shodaku, method: str, path: str, body: bytes, kind: str
) -> tuple[int, float, float]:
    """The status and time of one request, and the slowest /healthz while it ran."""
    done = threading.Event()
    worst = [0.0]

    def probe() -> None:
        while not done.is_set():
            worst[0] = max(worst[0], health(shodaku))

    prober = threading.Thread(target=probe)
    start = time.perf_counter()
    prober.start()
    status = request(shodaku, method, path, body, kind)
    elapsed = time.perf_counter() - start
    done.set()
    prober.join()
    return status, elapsed, worst[0]


def multipart(fields: dict[str, str], content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="list.csv"\r\nContent-Type: text/csv\r\n\r\n'.encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--only", default="", help="comma-separated beginnings of the names of the cases to run"
    )
    args = parser.parse_args()
    prefixes = [p for p in args.only.split(",") if p]

    def wanted(name: str) -> bool:
        return not prefixes or any(name.startswith(p) for p in prefixes)

    with Shodaku(postgres_url=args.database_url) as shodaku:
        world = shodaku.world()
        for _ in range(20):
            health(shodaku)
        trivial = statistics.median(health(shodaku) for _ in range(50))
        unexpected: list[str] = []
        print(f"trivial request (GET /healthz, median of 50): {trivial * 1000:.1f} ms\n")
        print(f"{'input':48} {'status':>6} {'answer':>9} {'ratio':>8} {'worst /healthz':>15}")

        def report(name: str, status: int, elapsed: float, worst: float, expect_2xx: bool) -> None:
            print(
                f"{name:48} {status:>6} {elapsed * 1000:>7.0f}ms {elapsed / trivial:>7.0f}x "
                f"{worst * 1000:>12.0f}ms",
                flush=True,
            )
            if status >= 500 or (status < 400) != expect_2xx:
                unexpected.append(f"{name}: status {status}")

        raw = "{% raw %}" + "{{" * 245_000 + "{% endraw %}"
        cases = {
            **{name: {"html": html} for name, html in TEMPLATES.items()},
            "1 MB of {% raw %}{{, html and text (valid: 201)": {"html": raw, "text": raw},
        }
        for name, parts in cases.items():
            if not wanted(name):
                continue
            body = json.dumps({"name": "hostile", "subject": "s", **parts}).encode()
            status, elapsed, worst = timed(
                shodaku, "POST", "/api/v1/templates", body, "application/json"
            )
            report(name, status, elapsed, worst, expect_2xx=name.endswith("(valid: 201)"))

        fields = {
            "list_id": str(world["list_id"]),
            "provider_name": "株式会社名簿サービス",
            "provider_address": "〒150-0001 東京都渋谷区神宮前1-2-3",
            "provider_representative": "代表取締役 鈴木一郎",
            "acquisition_circumstances": "展示会で名刺交換により取得",
            "received_at": "2026-11-01T10:00:00+09:00",
            "items": "メールアドレス",
        }
        csvs = {
            "CSV header of 16,000,000 columns": b"email" + b"," * 16_000_000 + b"\r\nx@e.jp\r\n",
            "CSV header of 201 columns": (
                ",".join(["email", *(f"c{i}" for i in range(200))]) + "\r\nx@e.jp\r\n"
            ).encode(),
        }
        for name, content in csvs.items():
            if not wanted(name):
                continue
            body, kind = multipart(fields, content)
            status, elapsed, worst = timed(shodaku, "POST", "/api/v1/imports", body, kind)
            report(name, status, elapsed, worst, expect_2xx=False)

        name = "a date field of 40,000 digits"
        if wanted(name):
            body = json.dumps(
                {"acquisition": {"received_at": "1" * 40_000 + "x"}, "list_id": 1, "rows": []}
            ).encode()
            status, elapsed, worst = timed(
                shodaku, "POST", "/api/v1/imports", body, "application/json"
            )
            report(name, status, elapsed, worst, expect_2xx=False)
        if unexpected:
            raise SystemExit("unexpected answers:\n" + "\n".join(unexpected))


if __name__ == "__main__":
    main()
