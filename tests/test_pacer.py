"""The global send budget: evenly spaced, and no burst after a stalled event loop."""

from __future__ import annotations

import asyncio

from coach.pacer import Pacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_pacer_spaces_requests_and_never_bursts_after_a_stall(monkeypatch) -> None:  # noqa: ANN001
    clock = FakeTime()
    released: list[float] = []

    async def fake_sleep(delay: float) -> None:
        clock.now += delay

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    pacer = Pacer(40, clock=clock)
    for _ in range(40):
        await pacer.wait()
        released.append(clock.now)
    assert abs((released[-1] - released[0]) - 39 / 40) < 1e-9
    clock.now += 5.0  # the loop stalled for 5 s with work queued
    after = []
    for _ in range(45):
        await pacer.wait()
        after.append(clock.now)
    in_first_second = [t for t in after if t < after[0] + 1.0]
    assert len(in_first_second) <= 41
