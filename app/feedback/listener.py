"""The inbound listener (``shodaku inbound``, or inside ``shodaku serve`` when
``SHODAKU_INBOUND_PORT`` is set): SMTP, or LMTP behind Postfix, on the application's own event
loop.

It accepts mail only for ``bounce+<token>@`` and ``unsubscribe+<token>@`` addresses of the
bounce domain whose token verifies, and refuses every other recipient at RCPT. Messages are
bounded in size (``SHODAKU_INBOUND_MAX_MESSAGE_BYTES``), connections in number
(``SHODAKU_INBOUND_MAX_CONNECTIONS``) and recipients per message. Each accepted message is acted
on in its own transaction per recipient before the 250 reply: a failure answers 451, so the
sending server tries again and nothing is lost. Malformed input never crashes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from app.errors import InvalidToken
from app.feedback.service import Outcome, SoftBouncePolicy, handle, read_recipient
from app.runtime import Runtime

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 10


class FeedbackHandler:
    """aiosmtpd's handler: RCPT checks the address and its token, DATA acts on the message."""

    def __init__(self, runtime: Runtime) -> None:
        domain = runtime.settings.bounce_domain
        if domain is None:
            raise ValueError("the inbound listener needs SHODAKU_BOUNCE_DOMAIN")
        self.runtime = runtime
        self.domain = domain
        settings = runtime.settings
        self.policy = SoftBouncePolicy(
            limit=settings.soft_bounce_limit,
            days=settings.soft_bounce_days,
            strict_domains=tuple(
                d.strip().lower()
                for d in settings.soft_bounce_strict_domains.split(",")
                if d.strip()
            ),
            strict_limit=settings.soft_bounce_strict_limit,
        )
        self.counts: Counter[str] = Counter()
        self.connections = 0

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        try:
            read_recipient(self.runtime.feedback_tokens, address, self.domain)
        except InvalidToken:
            self.counts[Outcome.UNVERIFIED.value] += 1
            return "550 5.1.1 No such recipient here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or envelope.content
        if not isinstance(data, bytes):
            data = str(data or "").encode("utf-8", "surrogateescape")
        hasher = await self.runtime.hasher()
        for address in envelope.rcpt_tos:
            claim = read_recipient(self.runtime.feedback_tokens, address, self.domain)
            try:
                async with self.runtime.sessionmaker() as db, db.begin():
                    outcome = await handle(db, hasher, claim, data, policy=self.policy)
            except Exception:
                log.exception("inbound message could not be processed; asked to retry")
                self.counts["retry"] += 1
                return "451 4.3.0 Temporary failure, please try again"
            self.counts[outcome.value] += 1
        return "250 2.0.0 OK"


def _protocol(handler: FeedbackHandler, lmtp: bool) -> Any:
    settings = handler.runtime.settings
    base = LMTP if lmtp else SMTP

    class Listener(base):  # type: ignore[misc, valid-type]
        """One connection; beyond the limit it is answered 421 and closed."""

        _counted = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if handler.connections >= settings.inbound_max_connections:
                if isinstance(transport, asyncio.WriteTransport):
                    transport.write(b"421 4.7.0 Too many connections, try again later\r\n")
                transport.close()
                return
            handler.connections += 1
            self._counted = True
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if not self._counted:
                return
            handler.connections -= 1
            self._counted = False
            super().connection_lost(exc)

    return Listener(
        handler,
        data_size_limit=settings.inbound_max_message_bytes,
        hostname=settings.bounce_domain,
        ident="Shodaku",
        decode_data=False,
        enable_SMTPUTF8=True,
        timeout=60,
    )


async def start_listener(
    runtime: Runtime, *, host: str | None = None, port: int | None = None, lmtp: bool = False
) -> tuple[asyncio.Server, FeedbackHandler]:
    """Listen on ``host``:``port`` (default: the settings') on the running loop."""
    # aiosmtpd logs every command it reads at INFO, addresses and tokens included: its log
    # stays at ERROR (DS-6), whatever the root logger's level.
    smtp_log = logging.getLogger("mail.log")
    if smtp_log.level < logging.ERROR:  # NOTSET (0) included
        smtp_log.setLevel(logging.ERROR)
    handler = FeedbackHandler(runtime)
    listen_port = port if port is not None else runtime.settings.inbound_port
    if listen_port is None:
        raise ValueError("no inbound port: set SHODAKU_INBOUND_PORT")
    server = await asyncio.get_running_loop().create_server(
        lambda: _protocol(handler, lmtp),
        host or runtime.settings.inbound_host,
        listen_port,
    )
    return server, handler
