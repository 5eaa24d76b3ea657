"""Who the client is behind a reverse proxy (CR-1: the consent record's IP; the per-IP signup
limit against subscription bombing).

Behind a proxy every request arrives from the proxy's address. Unless the proxy is trusted
(``SHODAKU_FORWARDED_ALLOW_IPS`` / ``shodaku serve --forwarded-allow-ips``), its
X-Forwarded-For is ignored, as it must be (anyone can send one): then every visitor shares one
per-IP signup limit, and the consent records hold the proxy's address. That silent failure is
logged once, at the first request that carries forwarded headers the service did not use.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

log = logging.getLogger(__name__)

FORWARDED_HEADERS = (b"x-forwarded-for", b"forwarded")
_PEER = "shodaku.peer"  # the scope key holding the connection's own address


class ForwardedHeadersMiddleware:
    """Take the client address from X-Forwarded-For when the peer is a trusted proxy
    (uvicorn's own ProxyHeadersMiddleware does that part), and warn once when forwarded headers
    arrive but the client address stays the peer's."""

    def __init__(self, app: ASGIApp, trusted: str | None) -> None:
        self.app = app
        self._proxied: ASGIApp = self._check
        if trusted:
            # uvicorn's ASGI types are its own; the callables are the same.
            proxy = ProxyHeadersMiddleware(cast(Any, self._check), trusted_hosts=trusted)
            self._proxied = cast(ASGIApp, proxy)
        self._trusted = trusted
        self.warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[_PEER] = scope.get("client")
        await self._proxied(scope, receive, send)

    async def _check(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.warned
            and scope.get("client") == scope.get(_PEER)
            and any(name in FORWARDED_HEADERS for name, _value in scope["headers"])
        ):
            self.warned = True
            peer = scope.get(_PEER)
            log.warning(
                "a request from %s carries X-Forwarded-For/Forwarded headers, but its client "
                "address stays the peer's (trusted proxies: %s): behind a reverse proxy, "
                "set SHODAKU_FORWARDED_ALLOW_IPS (or shodaku serve --forwarded-allow-ips) "
                "to the proxy's address and have it send X-Forwarded-For, or every visitor "
                "shares one signup limit and consent records hold the proxy's address; "
                "logged once",
                peer[0] if peer else "an unknown peer",
                self._trusted or "none",
            )
        await self.app(scope, receive, send)
