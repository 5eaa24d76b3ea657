"""The one shape of a background loop in Shodaku: do a step, then wait (for a wake-up or a
timeout) unless the step found more to do; a failed step is logged and tried again after a
pause, and only cancellation ends the loop. The in-process sender, the confirmation outbox and
the in-process retention purge all run on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_forever(
    step: Callable[[], Awaitable[bool]],
    *,
    name: str,
    idle_seconds: float,
    wakeup: asyncio.Event | None = None,
    retry_seconds: float | None = None,
) -> None:
    """Run ``step`` until cancelled. ``step`` returns True when it did work and should run
    again at once. Otherwise the loop waits ``idle_seconds``, or less if ``wakeup`` is set
    meanwhile. The event is cleared before the wait: a wake-up that came while the step ran is
    dropped, and what it announced is found by the next step, at most ``idle_seconds`` later.
    After a failure the loop waits ``retry_seconds`` (default: ``idle_seconds``, and never
    longer)."""
    while True:
        delay = idle_seconds
        try:
            if await step():
                continue
        except asyncio.CancelledError:
            raise
        except Exception:
            if retry_seconds is not None:
                delay = min(idle_seconds, retry_seconds)
            log.exception("%s failed; retrying in %s s", name, delay)
        if wakeup is None:
            await asyncio.sleep(delay)
            continue
        wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout=delay)
