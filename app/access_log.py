"""Access logging that never records a token, an API key or an address (DS-6).

Uvicorn's own access log prints raw paths, and /unsubscribe/{token} and /confirm/{token} carry
tokens, so it is switched off and this middleware logs a redacted line instead: the path with
token segments replaced, and no query string at all (queries may hold addresses).
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("shodaku.access")

_TOKEN_PATH = re.compile(r"^/(unsubscribe|confirm)/[^/]+")


def redact_path(path: str) -> str:
    return _TOKEN_PATH.sub(lambda m: f"/{m.group(1)}/[token]", path)


class RedactUvicornAccess(logging.Filter):
    """Uvicorn's own access log, should an operator turn it back on (``uvicorn --factory
    app.main:create_app`` logs access by default): its path argument, which carries tokens
    and query strings (an address in ``?email=``), is replaced by the redacted path (DS-6)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn logs '%s - "%s %s HTTP/%s" %d' with (client, method, path?query, version, status)
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path = args[2].split("?", 1)[0]
            record.args = (args[0], args[1], redact_path(path), args[3], args[4])
        return True


# A filter on the logger itself applies to every record logged there, whatever the handlers
# the operator configures; logging.config keeps existing filters.
logging.getLogger("uvicorn.access").addFilter(RedactUvicornAccess())


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            client = scope.get("client")
            log.info(
                "%s %s %s %.1fms client=%s",
                scope.get("method", "-"),
                redact_path(scope.get("path", "")),
                status,
                (time.perf_counter() - started) * 1000,
                client[0] if client else "-",
            )
