"""One answer per burst (coach/bursts.py), driven directly with short waits on the event loop's clock."""

from __future__ import annotations

import asyncio
import logging

from coach.bursts import Bursts


class Answers:
    def __init__(self) -> None:
        self.items: list[tuple[str, float]] = []
        self.gate: asyncio.Event | None = None  # while set up and not set, answering blocks
        self.started = asyncio.Event()

    async def __call__(self, item: str) -> None:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if item == "boom":
            raise RuntimeError("answering failed")
        self.items.append((item, asyncio.get_running_loop().time()))


async def test_a_burst_gets_one_answer_to_its_latest_message_after_a_pause() -> None:
    answers = Answers()
    bursts: Bursts[int, str] = Bursts(answers, settle_seconds=0.05, max_wait_seconds=5)
    start = asyncio.get_running_loop().time()
    for text in ("intro", "drop", "bassline"):
        bursts.heard(1, text)
        await asyncio.sleep(0.01)
    await bursts.settled()
    assert [item for item, _ in answers.items] == ["bassline"]
    assert answers.items[0][1] - start >= 0.02 + 0.05  # the last message, then the pause


async def test_a_steady_stream_is_still_answered_by_the_longest_wait() -> None:
    answers = Answers()
    bursts: Bursts[int, str] = Bursts(answers, settle_seconds=0.1, max_wait_seconds=0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while loop.time() - start < 0.5:  # never quiet for the settle time
        bursts.heard(1, f"m{sent}")
        sent += 1
        await asyncio.sleep(0.02)
    await bursts.settled()
    assert answers.items and answers.items[0][1] - start < 0.45  # not held back until the stream stopped
    assert len(answers.items) < sent and answers.items[-1][0] == f"m{sent - 1}"


async def test_a_message_arriving_while_answering_is_answered_right_after() -> None:
    answers = Answers()
    answers.gate = asyncio.Event()
    bursts: Bursts[int, str] = Bursts(answers, settle_seconds=0, max_wait_seconds=1)
    bursts.heard(1, "first")
    await asyncio.wait_for(answers.started.wait(), 1)
    bursts.heard(1, "second")
    bursts.heard(1, "third")
    answers.gate.set()
    await bursts.settled()
    assert [item for item, _ in answers.items] == ["first", "third"]


async def test_senders_are_answered_apart() -> None:
    answers = Answers()
    bursts: Bursts[int, str] = Bursts(answers, settle_seconds=0.02, max_wait_seconds=1)
    bursts.heard(1, "alice")
    bursts.heard(2, "bob")
    await bursts.settled()
    assert sorted(item for item, _ in answers.items) == ["alice", "bob"]


async def test_a_failed_answer_is_logged_and_the_next_burst_is_answered(caplog) -> None:  # noqa: ANN001
    answers = Answers()
    bursts: Bursts[int, str] = Bursts(answers, settle_seconds=0, max_wait_seconds=1, name="DMs of user")
    with caplog.at_level(logging.ERROR, logger="bounce.bursts"):
        bursts.heard(7, "boom")
        await bursts.settled()
    assert "answering the DMs of user 7 failed" in caplog.text
    bursts.heard(7, "after")
    await bursts.settled()
    assert [item for item, _ in answers.items] == ["after"]


async def test_close_drops_what_waits_and_stops_answering() -> None:
    answers = Answers()
    bursts: Bursts[int, str] = Bursts(answers, settle_seconds=10, max_wait_seconds=10)
    bursts.heard(1, "later")
    await bursts.close()
    await bursts.settled()  # nothing left running
    assert answers.items == []
