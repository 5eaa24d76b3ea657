"""Send throughput: Shodaku (real API, real workers, every check on) against a bare aiosmtplib
loop, both sending to Debian's smtp-sink on loopback, in the same run.

    .venv/bin/python bench/send.py                      # SQLite, `shodaku serve`, 20,000
    .venv/bin/python bench/send.py -n 5000
    .venv/bin/python bench/send.py --database-url postgresql+psycopg://postgres@127.0.0.1/test \
        --workers 2                                     # PostgreSQL, two `shodaku worker`s

Prints messages per second of both, their ratio, and the peak RSS of each Shodaku process.
Needs `smtp-sink` (Debian package postfix; no postfix daemon is started).

These VMs lose CPU to their neighbours (steal) by the second, so the bare loops run both before
and after Shodaku and the ratio is to their mean; CPU time per message (the process's own,
which steal does not inflate) is printed too, for Shodaku's sending processes and the bare loop.

The baseline the issue names is aiosmtplib's ``sendmail``, one command at a time. Shodaku
pipelines MAIL/RCPT/DATA when the server offers PIPELINING (smtp-sink does), so a second
baseline is printed too: a bare loop pipelining the same way over plain asyncio streams. The
ratio to it is what every check, the ledger and composition cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Coroutine
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Shodaku, free_port, rss_mb, seed_consented, start_smtp_sink


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


async def bare_loop(port: int, messages: list[bytes], concurrency: int) -> float:
    """The baseline: pre-built messages, a pool of connections, nothing else."""
    n = len(messages)
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


async def _reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if line[3:4] != b"-":
            return int(line[:3])


async def pipelined_loop(port: int, messages: list[bytes], concurrency: int) -> float:
    """The same pre-built messages (already in wire form), each sent as two round trips:
    MAIL, RCPT and DATA in one write (RFC 2920), then the message."""
    n = len(messages)
    queue = list(range(n))
    queue.reverse()

    async def lane() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await _reply(reader)
        writer.write(b"EHLO bench.example\r\n")
        await _reply(reader)
        while queue:
            i = queue.pop()
            writer.write(
                b"MAIL FROM:<news@shodaku.example>\r\nRCPT TO:<user%07d@example.jp>\r\nDATA\r\n" % i
            )
            codes = [await _reply(reader) for _ in range(3)]
            assert codes == [250, 250, 354], codes
            writer.write(messages[i])
            assert await _reply(reader) == 250
        writer.write(b"QUIT\r\n")
        await _reply(reader)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(loop: Coroutine[Any, Any, float], n: int) -> tuple[float, float]:
    """(msg/s, CPU µs per message) of a bare loop run in this process."""
    cpu = time.process_time()
    rate = asyncio.run(loop)
    return rate, (time.process_time() - cpu) * 1e6 / n


def baselines(port: int, messages: list[bytes], concurrency: int) -> dict[str, tuple[float, float]]:
    """Both bare loops; the messages are built beforehand, outside what is timed."""
    wire = [m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b".\r\n" for m in messages]
    return {
        "aiosmtplib": timed(bare_loop(port, messages, concurrency), len(messages)),
        "pipelined": timed(pipelined_loop(port, wire, concurrency), len(messages)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=20_000, help="recipients (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=8, help="SMTP connections (default 8)")
    parser.add_argument("--database-url", help="PostgreSQL URL; default: a SQLite file")
    parser.add_argument("--workers", type=int, default=0, help="`shodaku worker` processes")
    args = parser.parse_args()
    if args.database_url and not args.workers:
        args.workers = 1

    sink_port = free_port()
    sink = start_smtp_sink(sink_port)
    try:
        messages = bare_messages(args.n)
        before = baselines(sink_port, messages, args.concurrency)
        with Shodaku(
            postgres_url=args.database_url, smtp_port=sink_port, concurrency=args.concurrency
        ) as shodaku:
            world = shodaku.world()
            seed_consented(shodaku.database_url, world["list_id"], world["sender_id"], args.n)
            shodaku.start_workers(args.workers)
            # The processes that send: `serve` on SQLite, the workers on PostgreSQL.
            senders = [w.pid for w in shodaku.workers] or [shodaku.serve.pid]  # type: ignore[union-attr]
            cpu_before = sum(cpu_seconds(pid) for pid in senders)
            body = shodaku.wait_sent(shodaku.start_campaign(world))
            # The campaign's own clock (started when the send was accepted, finished when the
            # last delivery was final), so how often the bench polls does not matter.
            elapsed = (
                datetime.fromisoformat(body["finished_at"])
                - datetime.fromisoformat(body["started_at"])
            ).total_seconds()
            cpu_us = (sum(cpu_seconds(pid) for pid in senders) - cpu_before) * 1e6 / args.n
            rss = [rss_mb(shodaku.serve.pid)] if shodaku.serve else []
            rss_workers = [rss_mb(w.pid) for w in shodaku.workers]
        after = baselines(sink_port, messages, args.concurrency)
    finally:
        sink.terminate()
        sink.wait()
    rate = args.n / elapsed
    kind = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"recipients: {args.n}, SMTP connections: {args.concurrency}, database: {kind}, "
        f"worker processes: {args.workers or 'in-process'}"
    )
    for name, label in (
        ("aiosmtplib", "bare aiosmtplib loop"),
        ("pipelined", "bare pipelined loop"),
    ):
        (r0, c0), (r1, c1) = before[name], after[name]
        print(
            f"{label + ':':22s}{r0:8.0f} msg/s before, {r1:8.0f} after; "
            f"CPU {c0:5.0f} / {c1:5.0f} µs per message"
        )
    print(f"shodaku:              {rate:8.0f} msg/s  ({elapsed:.1f} s, stats {body['stats']})")
    print(f"                      CPU {cpu_us:5.0f} µs per message in the sending process(es)")
    for name in ("aiosmtplib", "pipelined"):
        bare = (before[name][0] + after[name][0]) / 2
        cpu = (before[name][1] + after[name][1]) / 2
        print(
            f"ratio shodaku/{name + ':':12s}{rate / bare:5.2f} in msg/s (mean of before and after), "
            f"{cpu / cpu_us:5.2f} in CPU per message"
        )
    print(
        f"peak RSS: serve {rss[0]:.0f} MB"
        + "".join(f", worker {value:.0f} MB" for value in rss_workers)
    )


if __name__ == "__main__":
    main()
