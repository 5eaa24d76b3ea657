"""Signup limits against subscription bombing: in memory, per process, bounded memory.

Somebody who types a victim's address into many signup forms makes every one of them mail a
confirmation request to that victim. Two limits stop it (CC-3: a confirmation mail goes only to
an address that itself asked, and not a flood of them):

- per client IP: more signups than ``signup_limit_per_ip`` per window answer 429;
- per address: more than ``signup_limit_per_address`` per window are answered exactly like any
  other signup but store and send nothing, so the answer reveals nothing about the address.

The limits live in this process's memory: with several processes behind a balancer each counts
its own share, which still bounds the damage. Memory is bounded: each key keeps at most
``limit`` timestamps, keys idle for a whole window are dropped, and past ``max_keys`` the key
idle longest is dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from app.config import Settings

DEFAULT_MAX_KEYS = 50_000


class SlidingWindowLimiter:
    """At most ``limit`` hits per key within any ``window`` seconds; ``limit`` 0 means no limit.

    Not thread-safe: it is used from the event loop only.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        # Ordered by each key's latest recorded hit, oldest first, so idle keys sit at the front.
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hits)

    def hit(self, key: str) -> bool:
        """Record a hit and return True, or return False (recording nothing) if over the limit."""
        if self.limit <= 0:
            return True
        now = self._clock()
        self._drop_idle(now)
        hits = self._hits.get(key)
        if hits is not None:
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            self._hits.move_to_end(key)
        else:
            hits = deque(maxlen=self.limit)
            self._hits[key] = hits
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
        hits.append(now)
        return True

    def retry_after(self, key: str) -> int:
        """Whole seconds until ``key`` may hit again (at least 1)."""
        hits = self._hits.get(key)
        if not hits or len(hits) < self.limit:
            return 1
        return max(1, int(hits[0] + self.window - self._clock()) + 1)

    def _drop_idle(self, now: float) -> None:
        while self._hits:
            _key, hits = next(iter(self._hits.items()))
            if hits and hits[-1] > now - self.window:
                return
            self._hits.popitem(last=False)


@dataclass
class SignupLimits:
    per_ip: SlidingWindowLimiter
    per_address: SlidingWindowLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> SignupLimits:
        window = float(settings.signup_limit_window)
        return cls(
            per_ip=SlidingWindowLimiter(settings.signup_limit_per_ip, window),
            per_address=SlidingWindowLimiter(settings.signup_limit_per_address, window),
        )


async def get_signup_limits(request: Request) -> SignupLimits:
    """The process's limits, made on first use and kept on the application (one per app).

    Async so that it runs on the event loop, where the limiters are used, not in a thread.
    """
    state = request.app.state
    limits: SignupLimits | None = getattr(state, "signup_limits", None)
    if limits is None:
        limits = SignupLimits.from_settings(state.runtime.settings)
        state.signup_limits = limits
    return limits
