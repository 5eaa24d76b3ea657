"""A token bucket: ``SHODAKU_SEND_RATE`` messages per second for the whole process."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, n: int = 1) -> None:
        """Wait until ``n`` messages may start. A rate of 0 means unlimited."""
        if self.rate <= 0:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= n or (n > self.capacity and self._tokens >= self.capacity):
                    self._tokens -= n
                    return
                await asyncio.sleep((min(n, self.capacity) - self._tokens) / self.rate)
