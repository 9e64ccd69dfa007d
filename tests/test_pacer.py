"""The global send budget, on a virtual clock: a sliding window that holds however late answers come and
whatever a stall does to the clock, even spacing, round-robin between kinds, and a global back-off on 429."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random

import pytest

from coach.pacer import Pacer, Slot, paced_as, pacing_kind

GLOBAL_429 = {"Retry-After": "2.5", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}


class VirtualTime:
    """A clock and a sleep for the pacer: time only moves when every task is waiting on it (or on `jump`)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, delay), next(self._seq), fut))
        await fut

    def jump(self, seconds: float) -> None:
        """An event-loop stall: the clock leaps and nothing ran meanwhile."""
        self.now += seconds

    async def settle(self) -> None:
        for _ in range(30):
            await asyncio.sleep(0)

    async def run(self, until: asyncio.Future | None = None, limit: float = 3600.0) -> None:
        """Advance to each timer in turn until `until` is done (or no timers are left)."""
        for _ in range(200_000):
            await self.settle()
            if until is not None and until.done():
                return
            if not self._timers:
                return
            at, _, fut = heapq.heappop(self._timers)
            assert at < limit, "virtual time ran away"
            self.now = max(self.now, at)
            if not fut.done():
                fut.set_result(None)
        raise AssertionError("virtual time stopped moving")


def busiest_window(times: list[float], window: float = 1.0) -> int:
    """Most of `times` in any sliding (t - window, t]: how Discord (and the stand-in) count."""
    ordered, best, j = sorted(times), 0, 0
    for i, t in enumerate(ordered):
        while ordered[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def make(rate: float = 40) -> tuple[Pacer, VirtualTime]:
    vt = VirtualTime()
    return Pacer(rate, clock=vt, sleep=vt.sleep), vt


# ----------------------------------------------------------------------------- the sliding window


async def test_requests_arriving_late_never_crowd_discords_window() -> None:
    """Each request reaches Discord at some moment between its grant and its answer (the network, a busy
    loop, a slow Discord). Wherever that moment falls, no sliding second at Discord holds more than the budget."""
    pacer, vt = make(40)
    rng = random.Random(16)
    arrivals: list[float] = []
    grants: list[float] = []

    async def request() -> None:
        slot = await pacer.acquire("round")
        grants.append(vt.now)
        latency = rng.choice([0.005, 0.02, 0.05, 0.3, 0.9])  # some requests are very slow
        arrivals.append(vt.now + rng.random() * latency)
        await vt.sleep(latency)
        slot.sent = True
        pacer.done(slot)

    async def sender(n: int) -> None:
        for _ in range(n):
            await request()

    work = asyncio.gather(*(sender(25) for _ in range(32)))  # 800 requests, 32 in flight at most
    await vt.run(work)
    await work
    assert len(arrivals) == 800
    assert busiest_window(arrivals) <= 40
    assert busiest_window(grants) <= 40
    # The window costs little throughput: 800 requests at 40/s is 20 s; answers took 0.25 s on average.
    assert vt.now < 20 * 1.4


async def test_an_answer_still_outstanding_holds_its_place() -> None:
    pacer, vt = make(5)
    slots = [await pacer.acquire() for _ in range(1)]
    for _ in range(4):
        waiter = asyncio.ensure_future(pacer.acquire())
        await vt.run(waiter)
        slots.append(waiter.result())
    assert vt.now == pytest.approx(0.8)  # evenly spaced
    sixth = asyncio.ensure_future(pacer.acquire())
    await vt.run()  # no timers left: five requests are out, none answered, the window is full
    assert not sixth.done()
    for slot in slots:
        slot.sent = True
    vt.jump(3.0)  # the answers come in late
    for slot in slots:
        pacer.done(slot)
    await vt.run(sixth)
    assert sixth.done() and vt.now == pytest.approx(4.8)  # one window after the first answer


async def test_a_slot_never_sent_is_freed_at_once() -> None:
    pacer, vt = make(1)
    pacer.done(await pacer.acquire())  # failed before it went out (sent stays False)
    second = asyncio.ensure_future(pacer.acquire())
    await vt.run(second)
    pacer.done(second.result(), sent=False)
    nxt = asyncio.ensure_future(pacer.acquire())
    await vt.run(nxt)
    assert vt.now == pytest.approx(2.0)  # only spacing applied, no window held for unsent requests


async def test_a_stall_then_a_backlog_goes_out_evenly() -> None:
    pacer, vt = make(40)
    released: list[float] = []

    async def send(kind: str) -> None:
        await pacer.wait(kind)
        released.append(vt.now)

    first = asyncio.gather(*(send("round") for _ in range(40)))
    await vt.run(first)
    assert released[-1] - released[0] == pytest.approx(39 / 40)
    backlog = asyncio.gather(*(send("round") for _ in range(120)))
    await vt.settle()
    vt.jump(5.0)  # the loop stalled for 5 s with 120 requests queued
    await vt.run(backlog)
    after = released[40:]
    assert busiest_window(released) <= 40
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert min(gaps) >= 1 / 80 - 1e-9  # never a burst: at least half a slot apart
    assert after[-1] - after[0] < 120 / 40 + 0.5


async def test_a_clock_jump_during_a_request_keeps_it_counted() -> None:
    """A stall between the grant and the wire: the request reaches Discord late, with the ones after it."""
    pacer, vt = make(10)
    slots = []
    for _ in range(10):
        granted = asyncio.ensure_future(pacer.acquire())
        await vt.run(granted)
        slots.append(granted.result())
    eleventh = asyncio.ensure_future(pacer.acquire())
    vt.jump(5.0)  # the loop stalled; none of the ten has gone out yet
    await vt.run()
    assert not eleventh.done()  # ten in flight: the eleventh waits, however much time passed
    for slot in slots:
        slot.sent = True
        pacer.done(slot)
    await vt.run(eleventh)
    assert eleventh.done() and vt.now >= 5.9 + 1.0


# ----------------------------------------------------------------------------- fair shares


async def test_kinds_take_turns_and_each_kind_keeps_its_order() -> None:
    pacer, vt = make(40)
    order: list[str] = []

    async def send(kind: str, n: int) -> None:
        await pacer.wait(kind)
        order.append(f"{kind}{n}")

    await pacer.wait()  # the next grant has to wait: everything below queues
    jobs = [asyncio.ensure_future(send("round", i)) for i in range(200)]
    await vt.settle()
    jobs += [asyncio.ensure_future(send("dm", i)) for i in range(3)]
    jobs.append(asyncio.ensure_future(send("recap", 0)))
    done = asyncio.gather(*jobs)
    await vt.run(done)
    assert order[:8] == ["round0", "dm0", "recap0", "round1", "dm1", "round2", "dm2", "round3"]
    rounds = [int(x[5:]) for x in order if x.startswith("round")]
    assert rounds == sorted(rounds) and len(rounds) == 200


async def test_a_dm_waits_a_few_slots_behind_a_ten_thousand_post_fan_out() -> None:
    pacer, vt = make(40)
    grants: dict[str, float] = {}
    posts = [asyncio.ensure_future(pacer.wait("round")) for _ in range(10_000)]
    await vt.run(posts[100])
    asked = vt.now

    async def dm() -> None:
        await pacer.wait("dm")
        grants["dm"] = vt.now

    one = asyncio.ensure_future(dm())
    await vt.run(one)
    assert grants["dm"] - asked <= 2 / 40 + 1e-6
    for post in posts:
        post.cancel()
    await vt.run()


async def test_a_retry_goes_before_everyone_waiting() -> None:
    pacer, vt = make(40)
    order: list[str] = []

    async def send(label: str, **kw: object) -> None:
        slot = await pacer.acquire("round", **kw)  # type: ignore[arg-type]
        pacer.done(slot, sent=True)
        order.append(label)

    await pacer.wait()
    jobs = [asyncio.ensure_future(send(f"post{i}")) for i in range(5)]
    await vt.settle()
    jobs.append(asyncio.ensure_future(send("retry", urgent=True)))
    await vt.run(asyncio.gather(*jobs))
    assert order[0] == "retry"


async def test_the_sender_names_its_kind_through_a_context_variable() -> None:
    assert pacing_kind.get() == "other"
    seen: list[str] = []

    async def child() -> None:
        seen.append(pacing_kind.get())

    with paced_as("dm"):
        assert pacing_kind.get() == "dm"
        await asyncio.create_task(child())  # a task started inside the block inherits the kind
    assert pacing_kind.get() == "other" and seen == ["dm"]


# ----------------------------------------------------------------------------- 429s and counts


async def test_a_global_429_holds_back_every_sender() -> None:
    pacer, vt = make(40)
    released: list[float] = []

    async def send(kind: str) -> None:
        await pacer.wait(kind)
        released.append(vt.now)

    await pacer.wait()
    jobs = asyncio.gather(*(send(k) for k in ["round", "dm", "lesson", "recap"] * 5))
    await vt.settle()
    pacer.observe(429, GLOBAL_429)
    await vt.run(jobs)
    assert min(released) >= 2.5
    assert pacer.take_counts() == {"requests": 1, "429": 1, "invalid": 1, "global_429": 1, "backoffs": 1}
    assert pacer.take_counts() == {}


async def test_a_route_429_is_left_to_its_bucket_and_shared_ones_are_not_invalid() -> None:
    pacer, vt = make(40)
    pacer.observe(429, {"Retry-After": "3", "X-RateLimit-Scope": "user"})
    pacer.observe(429, {"Retry-After": "3", "X-RateLimit-Scope": "shared"})
    pacer.observe(403, {})
    pacer.observe(401, {})
    pacer.observe(200, {})
    assert pacer.delay() == 0.0
    assert pacer.take_counts() == {"requests": 5, "429": 2, "invalid": 3, "403": 1, "401": 1}
    pacer.observe(429, {"Retry-After": "1.5"})  # no scope: Cloudflare or unknown; everyone waits
    assert pacer.delay() == pytest.approx(1.5)


async def test_rate_zero_turns_pacing_off_but_a_429_still_holds_everyone() -> None:
    pacer, vt = make(0)
    for _ in range(500):
        await pacer.wait()
    assert vt.now == 0.0
    pacer.observe(429, GLOBAL_429)
    await vt.run(asyncio.ensure_future(pacer.wait()))
    assert vt.now == pytest.approx(2.5)
    with pytest.raises(ValueError):
        Pacer(-1)


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    pacer, vt = make(2)
    first = await pacer.acquire()
    waiter = asyncio.ensure_future(pacer.acquire())
    await vt.settle()
    waiter.cancel()
    await vt.run()
    assert waiter.cancelled()
    pacer.done(first, sent=True)
    nxt = asyncio.ensure_future(pacer.acquire())
    await vt.run(nxt)
    assert isinstance(nxt.result(), Slot) and vt.now == pytest.approx(0.5)
