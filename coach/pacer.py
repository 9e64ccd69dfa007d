"""A global send budget shared by everything that posts (Discord allows 50 requests/s per bot)."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Spaces requests at least 1/rate seconds apart; `await pacer.wait()` before each request.

    Waiters go one at a time and the next slot is set from when a waiter is really released, so a
    stalled event loop never releases a burst of overdue requests at once.
    """

    def __init__(self, rate: float, *, clock=time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            slot = self._next
            delay = slot - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            # Keep the cadence when woken a little late; after a long stall, restart from now (never a burst).
            self._next = max(slot, self._clock() - self.interval) + self.interval
