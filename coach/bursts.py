"""One answer per burst: what someone sends in quick succession is answered once, for the latest of it.

A message waits a moment (`settle_seconds`) in case another follows; each new one replaces the one waiting and
pushes the answer back, but never past `max_wait_seconds` after the burst began. A message that arrives while
the last one is being answered is answered right after. One task per sender at a time, none when all is quiet.
No discord import: the cog hands in its messages and the coroutine that answers one (cogs/dm_replies.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger("bounce.bursts")
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class Bursts(Generic[K, T]):
    def __init__(self, answer: Callable[[T], Awaitable[None]], *, settle_seconds: float, max_wait_seconds: float,
                 name: str = "messages from") -> None:
        self.answer = answer
        self.settle_seconds = settle_seconds
        self.max_wait_seconds = max_wait_seconds
        self.name = name                               # for the log line when answering fails
        self._latest: dict[K, T] = {}                  # per sender: the newest message not answered yet
        self._heard: dict[K, float] = {}               # per sender: when it arrived (loop time)
        self._answering: dict[K, asyncio.Task[None]] = {}  # per sender: the one task answering them

    def heard(self, key: K, item: T) -> None:
        """A message from `key`: it replaces one still waiting (one answer per burst)."""
        self._latest[key] = item
        self._heard[key] = asyncio.get_running_loop().time()
        if key not in self._answering:
            self._answering[key] = asyncio.create_task(self._answer_bursts(key), name=f"bounce-burst-{key}")

    async def settled(self) -> None:
        """Wait until every message heard so far has been answered."""
        while self._answering:
            await asyncio.wait(set(self._answering.values()))

    async def close(self) -> None:
        """Stop answering: what still waits is dropped, an answer under way is cancelled."""
        tasks = list(self._answering.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._answering.clear()  # a task cancelled before it ever ran has not removed itself
        self._latest.clear()
        self._heard.clear()

    async def _answer_bursts(self, key: K) -> None:
        """Answer the sender's latest message once they have paused; again if more arrived while answering."""
        loop = asyncio.get_running_loop()
        try:
            while key in self._latest:
                latest_by = loop.time() + self.max_wait_seconds
                while True:  # wait for a pause: each new message pushes the answer back, up to latest_by
                    until = min(self._heard[key] + self.settle_seconds, latest_by)
                    if until <= loop.time():
                        break
                    await asyncio.sleep(until - loop.time())
                await self.answer(self._latest.pop(key))
        except Exception:
            log.exception("answering the %s %s failed", self.name, key)
        finally:
            self._answering.pop(key, None)
            if key not in self._latest:
                self._heard.pop(key, None)
