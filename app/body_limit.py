"""Request body size limits: 413 with the API error body, never a 500 and never a hang.

Without a limit a client can make the process buffer any amount: FastAPI reads a JSON body whole
before validating it, and the public signup endpoint reads its body itself. Starlette's own
limiter answers 413 in plain text, outside the error-body contract (docs/reference.md), hence
this one.

A declared ``Content-Length`` over the limit is refused before a byte of the body is read. A
body without one (chunked) is counted as it is read, and the read that passes the limit raises
:class:`BodyTooLarge`, an ``HTTPException`` so that FastAPI's body parsing passes it on to the
one error handler instead of turning it into a 400.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIB = 1024 * 1024


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit % MIB == 0 else f"{limit:,} bytes"


class BodyTooLarge(HTTPException):
    """413: rendered by the one handler as ``{"error": "TooLarge", "detail": ...}``."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"The request body is too large: this endpoint accepts at most {_size(limit)}.",
        )


class BodyLimitMiddleware:
    """Limit each request body by the longest matching path prefix, else ``default``."""

    def __init__(
        self, app: ASGIApp, *, default: int, by_prefix: Sequence[tuple[str, int]] = ()
    ) -> None:
        self.app = app
        self.default = default
        # Longest prefix first, so /api/v1/imports wins over a shorter /api/v1.
        self.by_prefix = sorted(by_prefix, key=lambda item: len(item[0]), reverse=True)

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.by_prefix:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await _refuse(send, BodyTooLarge(limit))
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge as exc:
            # Raised where no handler saw it (e.g. a middleware reading the body); answer it
            # here unless an answer has already begun.
            if started:
                raise
            await _refuse(send, exc)


async def _refuse(send: Send, exc: BodyTooLarge) -> None:
    body = json.dumps({"error": "TooLarge", "detail": exc.detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not read: the client must not reuse the connection.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
