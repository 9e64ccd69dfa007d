"""The global send budget shared by every bot-authenticated request (Discord allows 50 requests/s per bot).

Discord counts requests as they ARRIVE, in a sliding one-second window. A request granted at 40/s can arrive
later than granted (the event loop is busy, the network or Discord is slow) and bunch up with the ones after it,
so counting grants is not enough. The pacer counts what Discord may count: a request holds its place in the
budget from the moment it is granted until one window AFTER its answer came back. Whenever Discord saw it, that
was inside this span, so at no moment can Discord's window hold more of our requests than `limit`, however
requests are delayed, retried or answered late, and whatever the clock does during an event-loop stall.

Kinds share the budget fairly: when several kinds of request wait ("round", "dm", "lesson", "recap", …), slots
go round-robin across kinds (first come, first served within a kind), so a 10,000-post fan-out never makes a
DM wait for more than a few slots. A sender names its kind with `paced_as(kind)` (or `pacing_kind.set(kind)`)
before it calls discord.py; the paced request hook in bot.py reads it. Unnamed requests are "other".

Rate 0 turns local pacing off (an operator's REST proxy paces); a 429 still makes every sender back off.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar

WINDOW = 1.0  # seconds: Discord's global limit is per second, in a sliding window

EPSILON = 1e-6  # seconds: closer than this counts as now (a float sum may land a hair short of a boundary)

pacing_kind: ContextVar[str] = ContextVar("pacing_kind", default="other")


@contextlib.contextmanager
def paced_as(kind: str) -> Iterator[None]:
    """Requests made inside this block (by this task, and by tasks it creates) are paced as `kind`."""
    token = pacing_kind.set(kind)
    try:
        yield
    finally:
        pacing_kind.reset(token)


class Slot:
    """One request's place in the budget: held from its grant until WINDOW after its answer (see `Pacer.done`)."""

    __slots__ = ("kind", "open", "sent")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.open = True    # still counted as in flight
        self.sent = False   # went out on the wire (set by the HTTP hook); a slot never sent is freed at once


class Pacer:
    """`slot = await pacer.acquire(kind)` before a request, `pacer.done(slot)` when its answer is in.

    Three rules decide when the next waiter goes:
    - the window: at most `limit` requests in flight or answered less than WINDOW ago;
    - even spacing: grants at least 1/rate apart (half that after a late wake-up, never a burst after a stall);
    - back-off: after a 429, nobody goes until its retry_after has passed.

    `counts` tallies what came back since the last `take_counts()`: "requests" (REST answers, interaction
    answers included), "invalid" (401, 403 and 429 except shared-scope 429s: what Discord counts towards its
    10,000-per-10-minutes ban), "401", "403", "429", "global_429", "backoffs".
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] | None = None, window: float = WINDOW) -> None:
        if rate < 0 or math.isnan(rate):
            raise ValueError("rate must be 0 (pacing off) or positive")
        self.rate = rate
        self.window = window
        self.interval = 1.0 / rate if rate else 0.0
        self.limit = max(1, math.floor(rate * window)) if rate else 0
        self.counts: collections.Counter[str] = collections.Counter()
        self._clock = clock
        self._sleep = sleep
        self._queues: dict[str, collections.deque[asyncio.Future[Slot]]] = {}
        self._turns: collections.deque[str] = collections.deque()  # kinds with waiters, whose turn is next first
        self._urgent: collections.deque[tuple[asyncio.Future[Slot], str]] = collections.deque()  # retries first
        self._waiters = 0  # queued futures not yet handed out (some may be cancelled)
        self._in_flight = 0
        self._answered: collections.deque[float] = collections.deque()  # answer times within the last window
        self._next = 0.0       # earliest next grant (spacing)
        self._resume_at = 0.0  # back-off after a 429
        self._runner: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ the sender's side
    async def acquire(self, kind: str = "other", *, urgent: bool = False) -> Slot:
        """Wait for this request's turn. `urgent` (a retry of a request already granted once) goes first."""
        if self._runner is None and self.delay() == 0.0:
            return self._grant(kind)
        fut: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        if urgent:
            self._urgent.append((fut, kind))
        else:
            queue = self._queues.get(kind)
            if queue is None:
                queue = self._queues[kind] = collections.deque()
                self._turns.append(kind)
            queue.append(fut)
        self._waiters += 1
        self._kick()
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.done(fut.result(), sent=False)  # granted, but its sender went away
            raise

    async def wait(self, kind: str = "other") -> None:
        """Wait for a turn for a request made OUTSIDE discord.py, sent right away (it counts from now).

        Requests through discord.py are paced by the hook in bot.py: name their kind with `paced_as(kind)`
        instead; waiting here first would count them twice."""
        self.done(await self.acquire(kind), sent=True)

    async def until_resumed(self) -> None:
        """Wait out a back-off: for a request granted before a 429 that has not gone out yet."""
        while (left := self._resume_at - self._clock()) > EPSILON:
            await (self._sleep or asyncio.sleep)(left)

    def done(self, slot: Slot, *, sent: bool | None = None) -> None:
        """The request's answer is in (or it failed): it counts for one more window, or not at all if never sent."""
        if not slot.open:
            return
        slot.open = False
        self._in_flight -= 1
        if slot.sent if sent is None else sent:
            now = self._clock()
            self._expire(now)
            self._answered.append(now)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    # ------------------------------------------------------------------ what came back
    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Count one answer from Discord; on a global (or unscoped) 429, every sender backs off by retry_after.

        A 429 scoped "user" or "shared" is one route's own bucket: discord.py waits on that route alone and its
        retry comes back through the pacer."""
        self.counts["requests"] += 1
        if status not in (401, 403, 429):
            return
        self.counts[str(status)] += 1
        scope = headers.get("X-RateLimit-Scope")
        if status != 429 or scope != "shared":
            self.counts["invalid"] += 1
        if status != 429:
            return
        is_global = headers.get("X-RateLimit-Global", "").lower() == "true" or scope == "global"
        if is_global:
            self.counts["global_429"] += 1
        if is_global or scope not in ("user", "shared"):
            try:
                retry_after = float(headers.get("Retry-After", "1"))
            except ValueError:
                retry_after = 1.0
            self.back_off(retry_after)

    def back_off(self, seconds: float) -> None:
        """Nobody is granted a slot for `seconds` from now."""
        self.counts["backoffs"] += 1
        self._resume_at = max(self._resume_at, self._clock() + max(0.0, seconds))

    def take_counts(self) -> dict[str, int]:
        """The counts since the last call (then reset): for the scheduler's per-tick summary."""
        out = dict(self.counts)
        self.counts.clear()
        return out

    # ------------------------------------------------------------------ the budget
    def delay(self) -> float | None:
        """Seconds until the next grant may go; None if the window is full of requests still awaiting answers."""
        now = self._clock()
        wait = self._resume_at - now
        if self.rate:
            wait = max(wait, self._next - now)
            self._expire(now)
            if self._in_flight + len(self._answered) >= self.limit:
                if not self._answered:
                    return None
                wait = max(wait, self._answered[0] + self.window - now)
        return wait if wait > EPSILON else 0.0

    def _expire(self, now: float) -> None:
        cutoff = now - self.window
        while self._answered and self._answered[0] <= cutoff:
            self._answered.popleft()

    def _grant(self, kind: str) -> Slot:
        if self.rate:
            now = self._clock()
            # Keep the cadence when woken a little late; later than half a slot, restart from now (no burst).
            self._next = max(self._next, now - self.interval / 2) + self.interval
        self._in_flight += 1
        return Slot(kind)

    def _next_waiter(self) -> tuple[asyncio.Future[Slot], str] | None:
        """Retries first; then the kinds in turn, each kind first come, first served. Skips cancelled waiters."""
        while self._urgent:
            fut, kind = self._urgent.popleft()
            self._waiters -= 1
            if not fut.done():
                return fut, kind
        while self._turns:
            kind = self._turns[0]
            queue = self._queues[kind]
            fut = queue.popleft()
            self._waiters -= 1
            if not queue:
                self._turns.popleft()
                del self._queues[kind]
            elif not fut.done():
                self._turns.rotate(-1)  # served: this kind goes to the back of the line
            if not fut.done():
                return fut, kind
        return None

    def _kick(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="bounce-pacer")
        elif self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _run(self) -> None:
        try:
            while self._waiters:
                delay = self.delay()
                if delay is None:  # wait for an answer: only then does the window know when it frees up
                    self._wake = asyncio.get_running_loop().create_future()
                    await self._wake
                    self._wake = None
                elif delay > 0:
                    await (self._sleep or asyncio.sleep)(delay)
                else:
                    waiter = self._next_waiter()
                    if waiter is not None:
                        waiter[0].set_result(self._grant(waiter[1]))
        finally:
            self._runner = None
            self._wake = None
