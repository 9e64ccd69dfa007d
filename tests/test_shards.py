"""Sharding: Discord's shard arithmetic, SHARD_COUNT/SHARD_IDS, the bot over several shards (one process or
several), the stand-in's sharded gateway (routing, 4011) and each process's share of the send budget."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
from pathlib import Path

import aiohttp
import discord
import pytest
from discord.ext import commands

from bot import BounceBot
from coach.clock import FixedClock
from coach.settings import Settings, SettingsError, load_settings
from coach.shards import Shards, format_shard_ids, parse_shard_ids, shard_of
from tests.conftest import START
from tests.fakediscord.fixtures import run_client, stop_client
from tests.fakediscord.server import FakeDiscord

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------- pure
def test_shard_of_is_discords_formula() -> None:
    gid = 1_180_000_000_000_000_000
    assert shard_of(gid, 1) == 0
    assert shard_of(gid, 4) == (gid >> 22) % 4
    assert {shard_of(gid + (k << 22), 4) for k in range(4)} == {0, 1, 2, 3}  # the timestamp part decides
    assert shard_of(gid + 1, 4) == shard_of(gid, 4)  # the low 22 bits do not
    with pytest.raises(ValueError, match="at least 1"):
        shard_of(gid, 0)


@pytest.mark.parametrize(("text", "ids"), [
    ("0", (0,)), ("0,1", (0, 1)), ("0-3", (0, 1, 2, 3)), ("0-1,3", (0, 1, 3)), (" 3 , 1 ", (1, 3)),
    ("2-2", (2,)), ("5,0-1", (0, 1, 5)),
])
def test_parse_shard_ids(text: str, ids: tuple[int, ...]) -> None:
    assert parse_shard_ids(text) == ids
    assert parse_shard_ids(format_shard_ids(ids)) == ids


@pytest.mark.parametrize(("text", "why"), [
    ("", "at least one"), ("0,,1", "empty item"), ("a", "'a' is not a shard id"), ("1-x", "not a shard id"),
    ("3-1", "runs backwards; write 1-3"), ("-1", "not a shard id"), ("0-2,1", "shard 1 is named twice"),
    ("1.5", "not a shard id"),
])
def test_parse_shard_ids_says_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_shard_ids(text)


def test_format_shard_ids_folds_runs() -> None:
    assert format_shard_ids((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"
    assert format_shard_ids([3]) == "3"


def test_shards_own_their_guilds_and_dms_go_to_shard_zero() -> None:
    gids = [(1_180_000_000_000 + k) << 22 for k in range(8)]
    low, high = Shards(4, (0, 1)), Shards(4, (3, 2))
    assert high.ids == (2, 3)
    for gid in gids:
        assert low.owns(gid) != high.owns(gid)
        assert low.owns(gid) == (shard_of(gid, 4) in (0, 1))
    assert low.owns(None) and not high.owns(None)  # Discord sends DMs to shard 0
    everything = Shards.all(4)
    assert everything.ids == (0, 1, 2, 3) and everything.every_shard and all(everything.owns(g) for g in gids)
    assert Shards() == Shards.all(1) == Shards(1, (0,)) and Shards().owns(None)
    assert Shards(4, (1,)).describe() == "shard 1 of 4" and Shards(4, (0, 1, 3)).describe() == "shards 0-1,3 of 4"


@pytest.mark.parametrize(("count", "ids", "why"), [
    (4, (4,), "shard 4 is outside 0-3"), (2, (0, 0), "shard 0 is named twice"), (0, (0,), "between 1 and"),
    (2, (), "at least one"),
])
def test_shards_refuse_impossible_sets(count: int, ids: tuple[int, ...], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Shards(count, ids)


def test_budget_share_is_the_process_part_of_the_bot_budget() -> None:
    assert Shards.all(1).share(40) == 40
    assert Shards.all(4).share(40) == 40
    assert Shards(4, (0, 1)).share(40) == 20
    assert Shards(4, (3,)).share(40) == 10
    assert Shards(3, (0,)).share(40) == pytest.approx(40 / 3)
    assert Shards(4, (2,)).share(0) == 0  # a REST proxy paces: local pacing stays off


# ---------------------------------------------------------------------------------------------- settings
def settings(**overrides: object) -> Settings:
    return load_settings(_env_file=None, discord_token="token", **overrides)


def test_shard_settings_default_to_one_process_with_every_shard() -> None:
    assert settings().shards == Shards(1, (0,))
    assert settings(shard_count=4).shards == Shards(4, (0, 1, 2, 3))
    assert settings(shard_count=4, shard_ids="").shards == Shards.all(4)
    assert settings(shard_count=4, shard_ids="3,0-1").shards == Shards(4, (0, 1, 3))
    assert settings(shard_count=4, shard_ids="3,0-1").shard_ids == "0-1,3"


def test_shard_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARD_COUNT", "8")
    monkeypatch.setenv("SHARD_IDS", "4-7")
    assert load_settings(_env_file=None, discord_token="token").shards == Shards(8, (4, 5, 6, 7))


@pytest.mark.parametrize(("overrides", "line"), [
    ({"shard_count": 4, "shard_ids": "4"}, "SHARD_IDS is malformed: Value error, shard 4 is outside 0-3 (there are 4 "
                                           "shards)."),
    ({"shard_ids": "1"}, "SHARD_IDS is malformed: Value error, shard 1 is outside 0-0 (there are 1 shards)."),
    ({"shard_count": 2, "shard_ids": "0,0"}, "SHARD_IDS is malformed: Value error, shard 0 is named twice in '0,0'."),
    ({"shard_count": 2, "shard_ids": "zero"}, "SHARD_IDS is malformed: Value error, 'zero' is not a shard id or a "
                                              "range such as 0-3."),
    ({"shard_count": 0}, "SHARD_COUNT is malformed: Input should be greater than or equal to 1."),
    ({"database_url": "mysql://bounce@db/bounce"}, "DATABASE_URL is malformed: Value error, use "
                                                   "sqlite:///path/to/file.sqlite3 or "
                                                   "postgresql://user:password@host:5432/db."),
])
def test_bad_shard_and_database_settings_are_one_clear_line(overrides: dict, line: str) -> None:
    with pytest.raises(SettingsError) as err:
        settings(**overrides)
    assert str(err.value) == line


# ---------------------------------------------------------------------------------------------- the bot
def make_bot(fake: FakeDiscord, db: Path, **overrides: object) -> BounceBot:
    values: dict[str, object] = {"discord_token": fake.token, "database_url": f"sqlite:///{db}",
                                 "discord_api_base": fake.api_base, "discord_gateway_url": fake.gateway_url}
    values.update(overrides)
    return BounceBot(Settings(_env_file=None, **values), clock=FixedClock(START),  # type: ignore[call-arg]
                     rng=random.Random(7), run_scheduler=False, guild_ready_timeout=0.05, identify_spacing=0)


def studio_on(fake: FakeDiscord, shard: int, count: int) -> tuple[int, int, int]:
    """(guild, channel, admin) of a server whose events go to `shard` of `count`."""
    gid = fake.add_guild(f"Studio {shard}", shard=(shard, count))
    assert shard_of(gid, count) == shard
    return gid, fake.add_channel(gid, "check-ins"), fake.add_member(gid, "Dana", admin=True)


async def setup_and_show(fake: FakeDiscord, gid: int, cid: int, admin: int) -> str:
    setup = await fake.slash(gid, cid, admin, "coach setup", {"channel": cid, "time": "20:00",
                                                               "timezone": "Europe/Berlin"})
    assert "All set" in await setup.wait_text()
    show = await fake.slash(gid, cid, admin, "coach show")
    text = await show.wait_text()
    await fake.sync()
    assert fake.callbacks(setup.id) == 1 and fake.callbacks(show.id) == 1  # answered exactly once
    return text


async def test_one_process_runs_two_shards_and_answers_each_server_once(
        fake_discord: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_discord
    studios = [studio_on(fake, shard, 2) for shard in (0, 1)]
    bot = make_bot(fake, tmp_path / "bounce.sqlite3", shard_count=2, shard_ids="0,1")
    with caplog.at_level(logging.INFO, logger="bounce"):
        task = await run_client(fake, bot)
    try:
        budget_lines = [r.getMessage() for r in caplog.records if "requests/s" in r.getMessage()]
        assert budget_lines == ["sending at most 40 requests/s; shards 0-1 of 2"]
        assert bot.sharding == Shards(2, (0, 1)) and bot.shard_count == 2 and sorted(bot.shards) == [0, 1]
        assert fake.shards == [(0, 2), (1, 2)]
        assert sorted(p["shard"] for p in fake.identify_payloads) == [[0, 2], [1, 2]]
        assert {g.id for g in bot.guilds} == {gid for gid, _, _ in studios}
        for shard, (gid, cid, admin) in enumerate(studios):
            assert ("GUILD_CREATE", gid) in fake.events(shard) and ("GUILD_CREATE", gid) not in fake.events(1 - shard)
            assert "20:00 (Europe/Berlin)" in await setup_and_show(fake, gid, cid, admin)
            assert bot.get_guild(gid).shard_id == shard  # type: ignore[union-attr]
            mine = [g for e, g in fake.events(shard) if e == "INTERACTION_CREATE"]
            assert mine == [gid, gid] and gid not in [g for e, g in fake.events(1 - shard) if e == "INTERACTION_CREATE"]
        assert bot.unowned_interactions == 0
    finally:
        await stop_client(bot, task)


async def test_two_processes_each_take_only_their_shard(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    fake = fake_discord
    (g0, c0, admin0), (g1, c1, admin1) = studio_on(fake, 0, 2), studio_on(fake, 1, 2)
    member1 = fake.add_member(g1, "Alice")
    first = make_bot(fake, tmp_path / "first.sqlite3", shard_count=2, shard_ids="0")
    second = make_bot(fake, tmp_path / "second.sqlite3", shard_count=2, shard_ids="1")
    first_task = await run_client(fake, first)
    second_task = await run_client(fake, second)
    try:
        assert fake.shards == [(0, 2), (1, 2)]
        assert [g.id for g in first.guilds] == [g0] and [g.id for g in second.guilds] == [g1]
        assert "20:00 (Europe/Berlin)" in await setup_and_show(fake, g0, c0, admin0)
        assert "20:00 (Europe/Berlin)" in await setup_and_show(fake, g1, c1, admin1)
        # A channel created in the second server reaches the second process only.
        cid = fake.add_channel(g1, "lessons")
        await fake.sync()
        assert second.guild_channel(g1, cid) is not None and first.get_channel(cid) is None
        assert ("CHANNEL_CREATE", g1) in fake.events(1) and ("CHANNEL_CREATE", g1) not in fake.events(0)
        # Each process answers from its own database (separate files here): the first server's setup is there.
        other = await fake.slash(g0, c0, admin0, "coach show")
        assert "20:00 (Europe/Berlin)" in await other.wait_text()
        # A DM belongs to shard 0, whichever server the member shares with the bot: the first process answers it.
        first.get_cog("DMReplies").settle_seconds = 0  # type: ignore[union-attr]
        await fake.dm_message(member1, f"<@{fake.bot_user_id}> finished the bassline")
        dm = int(fake.dm_channel(member1)["id"])
        await fake.sync()
        for _ in range(100):
            if fake.messages[dm]:
                break
            await asyncio.sleep(0.02)
        assert len(fake.messages[dm]) == 1
        assert ("MESSAGE_CREATE", None) in fake.events(0) and ("MESSAGE_CREATE", None) not in fake.events(1)
        # The guard: an interaction of the second server delivered to the first process (never by Discord) is
        # left to the second process, unanswered here.
        stray = await fake.slash(g1, c1, admin1, "coach show", shard=0)
        await fake.sync()
        await asyncio.sleep(0.1)
        assert stray.response_type is None and fake.callbacks(stray.id) == 0
        assert first.unowned_interactions == 1 and second.unowned_interactions == 0
    finally:
        await stop_client(second, second_task)
        await stop_client(first, first_task)


async def test_a_server_too_big_for_one_connection_is_closed_with_4011(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        for i in range(2501):
            fake.add_guild(f"Server {i}")
        client = commands.Bot(command_prefix="!", intents=discord.Intents.none(), guild_ready_timeout=0.05)
        with pytest.raises(discord.ConnectionClosed) as err:
            await run_client(fake, client)  # an unsharded IDENTIFY: shard [0, 1]
        assert err.value.code == 4011
        assert fake.gateway_closes == [(4011, None)] and "shard" not in fake.identify_payloads[-1]
        await client.close()
        # GET /gateway/bot recommends one shard per 1,000 servers.
        http = discord.http.HTTPClient(asyncio.get_running_loop())
        saved = discord.http.Route.BASE
        discord.http.Route.BASE = fake.api_base
        try:
            await http.static_login(fake.token)
            count, url, limits = await http.get_bot_gateway()
        finally:
            discord.http.Route.BASE = saved
            await http.close()
        assert (count, url) == (3, fake.gateway_url)
        assert limits["max_concurrency"] == 1 and limits["remaining"] == limits["total"] - 1


async def test_the_bot_needs_enough_shards_for_its_servers(tmp_path: Path) -> None:
    async with FakeDiscord(max_guilds_per_shard=2) as fake:  # the test-only knob: Discord's limit is 2,500
        for shard in (0, 0, 1, 1):
            studio_on(fake, shard, 2)
        bot = make_bot(fake, tmp_path / "bounce.sqlite3")
        with pytest.raises(discord.ConnectionClosed) as err:
            await run_client(fake, bot)
        assert err.value.code == 4011 and fake.gateway_closes == [(4011, [0, 1])]
        await bot.close()
        bot = make_bot(fake, tmp_path / "bounce.sqlite3", shard_count=2)
        task = await run_client(fake, bot)
        try:
            assert len(bot.guilds) == 4 and fake.shards == [(0, 2), (1, 2)]
        finally:
            await stop_client(bot, task)


async def test_bot_py_says_how_to_fix_sharding_required(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        for i in range(2501):
            fake.add_guild(f"Server {i}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_", "SHARD_"))}
        env.update(DISCORD_TOKEN=fake.token, DISCORD_API_BASE=fake.api_base, DISCORD_GATEWAY_URL=fake.gateway_url,
                   DATABASE_URL=f"sqlite:///{tmp_path / 'bounce.sqlite3'}", LOG_LEVEL="WARNING")
        proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 2, err.decode()
        assert err.decode().strip().splitlines()[-1] == (
            "bounce: Discord closed the gateway with 4011: the bot is in too many servers for that many shards (2,500 "
            "per shard at most); raise SHARD_COUNT (Discord recommends one shard per 1,000 servers) and give every "
            "process its SHARD_IDS.")
        assert "Traceback" not in err.decode()


class QuickIdentify(commands.AutoShardedBot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s between the shards' IDENTIFYs: the stand-in has no max_concurrency."""


async def test_auto_sharding_follows_the_recommended_count(tmp_path: Path) -> None:
    """discord.py's AutoShardedBot without a count asks GET /gateway/bot and opens that many shards."""
    async with FakeDiscord() as fake:
        gids = [fake.add_guild(f"Server {i}", shard=(i % 2, 2)) for i in range(1001)]
        client = QuickIdentify(command_prefix="!", intents=discord.Intents.none(), guild_ready_timeout=0.05)
        task = await run_client(fake, client)
        try:
            assert client.shard_count == 2 and fake.shards == [(0, 2), (1, 2)]
            assert len(client.guilds) == len(gids)
        finally:
            await stop_client(client, task)


async def test_the_stand_in_routes_every_guild_event_to_its_shard(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    intents = discord.Intents(guilds=True, members=True, guild_messages=True, dm_messages=True)
    client = QuickIdentify(command_prefix="!", intents=intents, guild_ready_timeout=0.05, shard_count=2)
    gids = [fake.add_guild(f"Studio {shard}", shard=(shard, 2)) for shard in (0, 1)]
    task = await run_client(fake, client)
    try:
        for shard, gid in enumerate(gids):
            cid = fake.add_channel(gid, "talk")
            uid = fake.add_member(gid, "Alice")
            fake.add_role(gid, "Finishers")
            await fake.user_message(cid, uid, "bounced the mix")
            fake.remove_member(gid, uid)
            await fake.sync()
            mine = [e for e, g in fake.events(shard) if g == gid]
            assert mine == ["GUILD_CREATE", "CHANNEL_CREATE", "GUILD_MEMBER_ADD", "GUILD_ROLE_CREATE",
                            "MESSAGE_CREATE", "GUILD_MEMBER_REMOVE"]
            assert not [e for e, g in fake.events(1 - shard) if g == gid]
        # A dropped shard resumes on its own session and gets what it missed; the other shard is untouched.
        await fake.drop_connection(shard=1, wait=False)
        fake.add_channel(gids[1], "missed")
        await fake.wait_resumed()
        await fake.sync()
        assert fake.resume_count == 1 and fake.identify_count == 2
        assert [c.name for c in client.get_guild(gids[1]).text_channels] == ["talk", "missed"]  # type: ignore[union-attr]
        await fake.remove_guild_live(gids[0])
        assert fake.events(0)[-1] == ("GUILD_DELETE", gids[0]) and client.get_guild(gids[0]) is None
    finally:
        await stop_client(client, task)


async def test_the_stand_in_refuses_impossible_shards(fake_discord: FakeDiscord) -> None:
    """A raw IDENTIFY (discord.py never sends these): a shard id not below the count is closed with 4010."""
    fake = fake_discord
    async with aiohttp.ClientSession() as http:
        for shard, code in (([2, 2], 4010), ([0, 0], 4010), (["0", 1], 4010)):
            async with http.ws_connect(fake.gateway_url) as ws:
                assert (await ws.receive_json())["op"] == 10
                await ws.send_json({"op": 2, "d": {"token": fake.token, "intents": 1, "properties": {},
                                                   "shard": shard}})
                closing = await ws.receive()
                assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == code
    assert fake.gateway_closes == [(4010, [2, 2]), (4010, [0, 0]), (4010, ["0", 1])] and fake.shards == []


# ---------------------------------------------------------------------------------------------- budget share
def test_each_process_paces_at_its_share_of_the_budget(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def bot(**overrides: object) -> BounceBot:
        return BounceBot(load_settings(_env_file=None, discord_token="token",
                                       database_url=f"sqlite:///{tmp_path / 'b.sqlite3'}", **overrides),
                         run_scheduler=False)

    assert bot().pacer.rate == 40
    assert bot(send_budget_per_second=40, shard_count=4).pacer.rate == 40
    half = bot(send_budget_per_second=40, shard_count=4, shard_ids="1,3")
    assert half.pacer.rate == 20 and half.pacer.limit == 20
    assert bot(send_budget_per_second=30, shard_count=4, shard_ids="2").pacer.rate == 7.5
    off = bot(send_budget_per_second=0, shard_count=4, shard_ids="2")
    assert off.pacer.rate == 0 and off.pacer.limit == 0
    with caplog.at_level(logging.INFO, logger="bounce"):
        half.log_budget()
        off.log_budget()
    assert [r.getMessage() for r in caplog.records] == [
        "sending at most 20 requests/s: shards 1,3 of 4, so 2/4 of SEND_BUDGET_PER_SECOND=40",
        "local pacing off (SEND_BUDGET_PER_SECOND=0): a REST proxy at DISCORD_API_BASE paces; shard 2 of 4",
    ]
