"""A global send budget shared by everything that posts (Discord allows 50 requests/s per bot)."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Spaces requests evenly at `rate` per second; `await pacer.wait()` before each request."""

    def __init__(self, rate: float, *, clock=time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._clock = clock
        self._next = 0.0
        self.sent = 0

    def reserve(self) -> float:
        """Claim the next slot; returns how long to wait for it."""
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self.interval
        self.sent += 1
        return slot - now

    async def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
