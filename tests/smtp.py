"""A real SMTP server for tests (aiosmtpd in a thread) that records what it receives and can be
told to refuse: per recipient at RCPT, or at DATA, with any reply code.

It offers PIPELINING (RFC 2920) by default, as production servers do, so the sender's pipelined
path is the one most tests exercise; ``SmtpServer(pipelining=False)`` gives a server without
it, which the sender drives one command at a time through aiosmtplib. (aiosmtpd reads commands
one by one from its stream, so it serves pipelined commands correctly; it only does not say so
in its EHLO reply, which the handler adds.)"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_at: float  # time.time() when MAIL FROM arrived: the start of the SMTP transaction

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Behaviour:
    # recipient -> reply at RCPT (e.g. "550 5.1.1 No such user")
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    # recipient -> list of replies at DATA, consumed one per attempt ("451 ..." then success)
    data_replies: dict[str, list[str]] = field(default_factory=dict)
    # called for every DATA; may return a reply to override acceptance
    on_data: Callable[[str], str | None] | None = None


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.owner.lock:
            self.owner.ehlo_names.append(hostname)
        if self.owner.pipelining:
            return [responses[0], "250-PIPELINING", *responses[1:]]
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        session.shodaku_mail_at = time.time()
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.owner.lock:
            self.owner.transactions.append(
                (address.lower(), getattr(session, "shodaku_mail_at", time.time()))
            )
        reply = self.owner.behaviour.rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        behaviour = self.owner.behaviour
        for rcpt in envelope.rcpt_tos:
            queue = behaviour.data_replies.get(rcpt.lower())
            if queue:
                return queue.pop(0)
            if behaviour.on_data is not None:
                override = behaviour.on_data(rcpt.lower())
                if override is not None:
                    return override
        data = envelope.original_content or envelope.content
        with self.owner.lock:
            self.owner.received.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=bytes(data),
                    mail_at=getattr(session, "shodaku_mail_at", time.time()),
                )
            )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    def __init__(self, port: int | None = None, *, pipelining: bool = True) -> None:
        self.host = "127.0.0.1"
        self.pipelining = pipelining
        self.port = port or free_port()
        self.received: list[Received] = []
        # (recipient, time its transaction's MAIL FROM arrived) for every RCPT, whether the
        # message then came or not: every SMTP transaction that started.
        self.transactions: list[tuple[str, float]] = []
        # The name each client gave in EHLO.
        self.ehlo_names: list[str] = []
        self.behaviour = Behaviour()
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, decode_data=False
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages_to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address.lower() in (t.lower() for t in r.rcpt_tos)]

    def count(self) -> int:
        with self.lock:
            return len(self.received)
