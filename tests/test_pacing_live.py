"""The send budget through the loopback Discord: its sliding one-second global window never answers 429, even
when the stand-in's limit is the budget itself, through start-up plus fan-out, a stalled bot, a stalled Discord."""

from __future__ import annotations

import asyncio
import time

import discord
import pytest

from coach.pacer import paced_as
from coach.settings import SettingsError, load_settings
from tests.conftest import Harness, eventually

BUDGET = 20


async def start(h: Harness, channels: int) -> tuple[list[int], list[int]]:
    """The stand-in's global limit is the budget itself: a request over budget in any sliding second is a 429."""
    gid = h.studio.guild
    cids = [h.fake.add_channel(gid, f"room-{i}") for i in range(channels)]
    users = [h.fake.add_member(gid, f"producer-{i}") for i in range(4)]
    h.fake.global_rate_limit = BUDGET
    await h.start(send_budget_per_second=BUDGET)
    return cids, users


async def post(bot: discord.Client, cid: int, text: str, kind: str = "round") -> discord.Message:
    with paced_as(kind):
        channel = bot.get_channel(cid)
        assert isinstance(channel, discord.TextChannel)
        return await channel.send(text)


async def dm(bot: discord.Client, uid: int, text: str) -> None:
    with paced_as("dm"):
        user = await bot.fetch_user(uid)
        await user.send(text)


async def tally(message: discord.Message, text: str) -> None:
    with paced_as("round"):
        await message.edit(content=text)


def assert_no_global_429(h: Harness) -> None:
    assert h.fake.global_429s == 0, h.fake.describe_requests(20)
    assert h.fake.busiest_window() <= BUDGET
    assert h.bot is not None
    counts = h.bot.pacer.take_counts()
    assert counts.get("429", 0) == 0 and counts.get("invalid", 0) == 0, counts


async def test_start_up_plus_fan_out_stays_inside_the_window(harness: Harness) -> None:
    cids, users = await start(harness, 24)  # login, command sync, catch-up: then at once the fan-out
    bot = harness.bot
    assert bot is not None
    messages = await asyncio.gather(*(post(bot, cid, "Round of the day") for cid in cids),
                                    *(dm(bot, uid, "Your check-in") for uid in users))
    await asyncio.gather(*(tally(m, "Tally: 1 in") for m in messages if isinstance(m, discord.Message)))
    assert len([r for r in harness.fake.requests if r.method == "PATCH"]) == len(cids)
    assert_no_global_429(harness)


async def test_a_stalled_bot_then_a_stalled_discord_then_the_backlog(harness: Harness) -> None:
    cids, users = await start(harness, 30)
    bot = harness.bot
    assert bot is not None

    async def trouble() -> None:
        await asyncio.sleep(0.3)
        time.sleep(0.5)  # noqa: ASYNC251  # the bot's event loop stalls: the clock jumps, requests granted before it go out late
        await asyncio.sleep(0.2)
        harness.fake.hold_requests()  # now Discord (or the network) stalls: requests pile up unanswered
        await asyncio.sleep(0.6)
        harness.fake.release_requests()  # ...and all arrive at once

    posts = [post(bot, cid, f"Post {i}") for i, cid in enumerate(cids)]
    posts += [post(bot, cid, f"Again {i}") for i, cid in enumerate(cids)]
    await asyncio.gather(trouble(), *posts, *(dm(bot, uid, "Your check-in") for uid in users))
    assert sum(len(harness.fake.messages[cid]) for cid in cids) == 2 * len(cids)
    assert_no_global_429(harness)


async def test_a_global_429_holds_back_every_sender_and_is_counted(harness: Harness) -> None:
    cids, users = await start(harness, 6)
    bot = harness.bot
    assert bot is not None
    bot.pacer.take_counts()
    harness.fake.inject_fault("POST", f"/channels/{cids[0]}/messages", status=429, retry_after=0.6, global_=True)
    first = asyncio.ensure_future(post(bot, cids[0], "First"))
    assert await eventually(lambda: harness.fake.faults_hit)
    limited_at = next(r.at for r in harness.fake.requests if r.status == 429)
    await asyncio.gather(first, *(post(bot, cid, "Next") for cid in cids[1:]), dm(bot, users[0], "Hello"))
    later = [r.at for r in harness.fake.requests if r.at > limited_at and (r.authorization or "").startswith("Bot ")]
    assert later and min(later) >= limited_at + 0.55  # nobody went before the retry_after had passed
    counts = bot.pacer.take_counts()
    assert counts["global_429"] == 1 and counts["invalid"] == 1 and counts["backoffs"] == 1
    harness.fake.global_429s = 0  # the one provoked on purpose


async def test_budget_zero_leaves_pacing_to_a_proxy(harness: Harness) -> None:
    assert load_settings(discord_token="t", send_budget_per_second=0).send_budget_per_second == 0
    with pytest.raises(SettingsError, match="SEND_BUDGET_PER_SECOND"):
        load_settings(discord_token="t", send_budget_per_second=-1)
    gid = harness.studio.guild
    cids = [harness.fake.add_channel(gid, f"room-{i}") for i in range(30)]
    bot = await harness.start(send_budget_per_second=0)
    started = time.monotonic()
    await asyncio.gather(*(post(bot, cid, "Round of the day") for cid in cids))
    assert time.monotonic() - started < 0.75  # 30 requests: at 40/s these would take that long at least
    assert bot.pacer.take_counts()["requests"] >= 30


async def test_a_dm_goes_out_within_a_few_slots_of_a_channel_fan_out(harness: Harness) -> None:
    cids, users = await start(harness, 40)
    bot = harness.bot
    assert bot is not None
    user = await bot.fetch_user(users[0])
    channel = await user.create_dm()
    fan_out = asyncio.gather(*(post(bot, cid, "Round of the day") for cid in cids))
    assert await eventually(lambda: len(harness.fake.requests_to("/channels/{channel_id}/messages")) >= 5)
    asked = len(harness.fake.requests)
    with paced_as("dm"):
        await channel.send("Your check-in")
    dm_at = next(i for i, r in enumerate(harness.fake.requests) if r.path == f"/channels/{channel.id}/messages")
    assert dm_at - asked <= 3  # the round posts already queued did not go first
    await fan_out
    assert_no_global_429(harness)
