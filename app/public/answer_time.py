"""A signup's answer takes the same time whatever is known about the address (CC-3).

The answer's content never says whether an address is new, pending, active or suppressed
(``endpoints._signup_accepted``), and every path does the same kind of database work
(``service.subscribe`` writes one outbox row in each). What differs is left to the clock: the
answer to ``POST /subscribe/{slug}`` is held until ``signup_answer_floor`` seconds after the
request arrived, whichever path it took. The unit of work has committed by then (the session
commits before the response starts), so the wait holds no connection and no lock: it costs the
caller time and the server nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SIGNUP_PATH = "/subscribe/"


class SignupAnswerFloor:
    def __init__(
        self,
        app: ASGIApp,
        floor: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.app = app
        self.floor = floor
        self._clock = clock
        self._sleep = sleep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.floor <= 0
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(SIGNUP_PATH)
        ):
            await self.app(scope, receive, send)
            return
        deadline = self._clock() + self.floor

        async def held(message: Message) -> None:
            if message["type"] == "http.response.start":
                wait = deadline - self._clock()
                if wait > 0:
                    await self._sleep(wait)
            await send(message)

        await self.app(scope, receive, held)
