"""A minimal, fast SMTP sink that records when each recipient's SMTP transaction started.

    python bench/sink.py PORT LOGFILE

Accepts everything, and offers PIPELINING as production servers (and smtp-sink) do; commands
written together are answered in order. For each accepted message it appends ``recipient<TAB>mail_from_time`` to
LOGFILE (time.time() when MAIL FROM arrived: the start of the SMTP transaction). Used by
bench/optout.py, which needs those times; Debian's smtp-sink cannot report them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time


class SinkProtocol(asyncio.Protocol):
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.buffer = b""
        self.in_data = False
        self.mail_at = 0.0
        self.rcpts: list[str] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 bench-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        assert self.transport is not None
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    # Keep only the tail that may hold the terminator.
                    self.buffer = self.buffer[-4:]
                    return
                self.buffer = self.buffer[end + 5 :]
                self.in_data = False
                for rcpt in self.rcpts:
                    self.log.append(f"{rcpt}\t{self.mail_at:.6f}\n")
                self.rcpts = []
                self.transport.write(b"250 2.0.0 accepted\r\n")
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return
            line = self.buffer[:line_end]
            self.buffer = self.buffer[line_end + 2 :]
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.transport.write(
                    b"250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n"
                )
            elif verb == b"MAIL":
                self.mail_at = time.time()
                self.rcpts = []
                self.transport.write(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                address = line[line.find(b"<") + 1 : line.rfind(b">")].decode("ascii", "replace")
                self.rcpts.append(address.lower())
                self.transport.write(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self.transport.write(b"354 go ahead\r\n")
            elif verb == b"RSET":
                self.rcpts = []
                self.transport.write(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"221 2.0.0 bye\r\n")
                self.transport.close()
                return
            else:
                self.transport.write(b"250 ok\r\n")


async def serve(port: int, path: str) -> None:
    log: list[str] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(log), "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with open(path, "a", encoding="ascii") as out:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            if log:
                out.writelines(log)
                log.clear()
                out.flush()
        server.close()
        out.writelines(log)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2]))
