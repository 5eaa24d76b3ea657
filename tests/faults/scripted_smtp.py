"""An SMTP server that misbehaves on cue, the way real ones do: per recipient, a script of
replies consumed one per attempt (at RCPT or at DATA), after which it accepts; a 421 reply
("service not available, closing transmission channel", RFC 5321 §3.8) hangs up the connection
right after it is sent, as a server shutting down does.

Built on ``tests.smtp.SmtpServer`` (the real aiosmtpd server of the suite), so ``received``,
``messages_to``, ``count`` and ``behaviour.rcpt_replies`` (permanent refusals) work as there.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from aiosmtpd.controller import Controller

from tests.smtp import SmtpServer, _Handler


def _hang_up_after_reply(server: Any) -> None:
    # aiosmtpd writes the handler's reply synchronously as soon as the hook returns, before the
    # loop runs callbacks: closing on the next loop turn sends the 421 first, then hangs up.
    transport = server.transport
    if transport is not None:
        asyncio.get_running_loop().call_soon(transport.close)


class _ScriptedHandler(_Handler):
    owner: ScriptedSmtpServer

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if getattr(session, "shodaku_connection", None) is None:
            session.shodaku_connection = self.owner.new_connection()
        return await super().handle_MAIL(server, session, envelope, address, options)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.owner.next_reply("rcpt", address)
        if reply is None:
            return await super().handle_RCPT(server, session, envelope, address, options)
        if reply.startswith("421"):
            _hang_up_after_reply(server)
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            reply = self.owner.next_reply("data", rcpt)
            if reply is not None:
                if reply.startswith("421"):
                    _hang_up_after_reply(server)
                return reply
        return await super().handle_DATA(server, session, envelope)


class ScriptedSmtpServer(SmtpServer):
    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self._scripts: dict[str, dict[str, list[str]]] = {"rcpt": {}, "data": {}}
        self._script_lock = threading.Lock()
        self.replies_given: Counter[tuple[str, str]] = Counter()  # (stage, reply code)
        self.connections = 0  # SMTP connections that began at least one transaction

    def script(self, stage: str, recipient: str, *replies: str) -> None:
        """Answer ``recipient``'s next attempts at ``stage`` ("rcpt" or "data") with
        ``replies``, one per attempt; then accept."""
        with self._script_lock:
            self._scripts[stage][recipient.lower()] = list(replies)

    def next_reply(self, stage: str, recipient: str) -> str | None:
        with self._script_lock:
            queue = self._scripts[stage].get(recipient.lower())
            if not queue:
                return None
            reply = queue.pop(0)
            self.replies_given[(stage, reply[:3])] += 1
            return reply

    def new_connection(self) -> int:
        with self._script_lock:
            self.connections += 1
            return self.connections

    def start(self) -> None:
        self._controller = Controller(
            _ScriptedHandler(self), hostname=self.host, port=self.port, decode_data=False
        )
        self._controller.start()
