"""Kill -9 drills: `python bot.py` against the loopback Discord, killed with SIGKILL again and again while it
posts channel rounds, lesson posts and DM rounds that all fell due in the same minute, restarted each time on
the same database; afterwards every server and member has exactly one of each, none missing.

Kills come two ways: at named steps inside the bot (BOUNCE_CRASHPOINT: after taking due work, before a post,
after a post but before it is recorded, after recording) and from outside at a random moment. Used by
tests/test_crash.py (a short drill in CI) and bench/bench_crash.py (the long one).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from coach.clock import to_unix
from coach.schedule import EVERY_DAY
from coach.storage import Storage
from tests.databases import database, database_url
from tests.fakediscord.server import FakeDiscord

ROOT = Path(__file__).resolve().parent.parent
TAKE_POINTS = ("in_take", "after_take")          # fire while due work is still being taken (the first runs)
POST_POINTS = ("before_post", "after_post", "after_record", "outside")


@dataclass
class World:
    guilds: list[tuple[int, int]] = field(default_factory=list)  # (guild, channel) with a round and a lesson due
    dm_guild: int = 0
    dm_members: list[int] = field(default_factory=list)
    dm_round_date: str = ""


@dataclass
class Drill:
    kills: int = 0
    by_point: Counter[str] = field(default_factory=Counter)
    missing: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    log_tail: str = ""
    other_exits: list[int | None] = field(default_factory=list)  # runs that ended without being killed

    def line(self) -> str:
        return f"{self.kills} kills, {self.missing} missing, {self.duplicates} duplicates"


async def build(fake: FakeDiscord, db_path: Path, servers: int, dm_members: int, *, shards: int = 1) -> World:
    """Servers whose round and lesson are due this minute; one server with a round open and members whose DM
    check-ins are due this minute (their DM channels already known, so a DM costs one request)."""
    world = World()
    now = datetime.now(UTC)
    due = (now - timedelta(seconds=60)).replace(second=0, microsecond=0)
    store = await Storage.open(database(db_path))
    try:
        for i in range(servers):
            guild = fake.add_guild(f"Studio {i}", shard=(i % shards, shards))
            channel = fake.add_channel(guild, "check-ins")
            world.guilds.append((guild, channel))
            await store.upsert_guild(guild_id=guild, channel_id=channel, time_local=f"{due:%H:%M}", timezone="UTC",
                                     days=EVERY_DAY, role_id=None, next_due=to_unix(due), now=now)
            await store.set_lesson_schedule(guild_id=guild, channel_id=channel, weekday=due.weekday(),
                                            time_local=f"{due:%H:%M}", timezone="UTC", next_due=to_unix(due), now=now)
        if dm_members:
            guild = fake.add_guild("DM Studio")
            channel = fake.add_channel(guild, "check-ins")
            world.dm_guild = guild
            later = due + timedelta(hours=12)
            await store.upsert_guild(guild_id=guild, channel_id=channel, time_local=f"{later:%H:%M}", timezone="UTC",
                                     days=EVERY_DAY, role_id=None, next_due=to_unix(later), now=now)
            open_round = await store.claim_round(guild_id=guild, local_date=f"{due:%Y-%m-%d}",
                                                 scheduled_at=to_unix(due), channel_id=channel, prompt_index=0,
                                                 late=False, manual=True, now=now)
            assert open_round is not None
            await store.mark_round_posted(open_round.id, 1, now)
            world.dm_round_date = open_round.local_date
            for i in range(dm_members):
                user = fake.add_member(guild, f"Producer {i}")
                world.dm_members.append(user)
                await store.set_dm_schedule(guild_id=guild, user_id=user, time_local=f"{due:%H:%M}", timezone="UTC",
                                            days=EVERY_DAY, next_due=to_unix(due), now=now)
                await store.set_dm_channel(user, int(fake.dm_channel(user)["id"]), now)
    finally:
        await store.close()
    return world


def tally(fake: FakeDiscord, world: World) -> tuple[int, int, int]:
    """(expected, posted, duplicates) over rounds, lessons and DM rounds."""
    expected = posted = duplicates = 0
    for _guild, channel in world.guilds:
        titles = Counter("round" if m["embeds"][0]["title"].startswith("Accountability Check") else "lesson"
                         for m in fake.messages[channel] if m.get("embeds")
                         and not m["embeds"][0]["title"].startswith("Weekly recap"))
        for kind in ("round", "lesson"):
            expected += 1
            posted += min(titles[kind], 1)
            duplicates += max(titles[kind] - 1, 0)
    for user in world.dm_members:
        n = sum(1 for m in fake.messages[int(fake.dm_channel(user)["id"])] if m.get("components"))
        expected += 1
        posted += min(n, 1)
        duplicates += max(n - 1, 0)
    return expected, posted, duplicates


async def drill(fake: FakeDiscord, db_path: Path, world: World, *, kills: int, seed: int = 7,
                budget: float = 15.0, limit: float = 240.0) -> Drill:
    """Run bot.py until everything is posted, killing it `kills` times on the way."""
    rng = random.Random(seed)
    result = Drill()
    started = time.monotonic()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_", "BOUNCE_"))}
    base_env.update(DISCORD_TOKEN=fake.token, DISCORD_API_BASE=fake.api_base, DISCORD_GATEWAY_URL=fake.gateway_url,
                    DATABASE_URL=database_url(db_path), LOG_LEVEL="INFO", SEND_BUDGET_PER_SECOND=str(budget),
                    TICK_SECONDS="2", INSTANCE_ID="crash-drill", OUTBOX_LEASE_SECONDS="5")
    run = 0
    while True:
        expected, posted, _ = tally(fake, world)
        if posted == expected and result.kills >= kills:
            break
        if time.monotonic() - started > limit:
            break
        env = dict(base_env)
        crash = result.kills < kills
        point = (TAKE_POINTS[run] if run < len(TAKE_POINTS)
                 else POST_POINTS[(run - len(TAKE_POINTS)) % len(POST_POINTS)])
        external = crash and point == "outside"
        if crash and not external:
            env["BOUNCE_CRASHPOINT"] = f"{point}:{rng.randint(1, 4) if point.endswith(('post', 'record')) else 1}"
        run += 1
        identified = fake.identify_count
        proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "bot.py"), cwd=db_path.parent,
                                                    env=env, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        stderr_task = asyncio.create_task(proc.stderr.read())  # type: ignore[union-attr]
        try:
            if external:
                while fake.identify_count == identified and proc.returncode is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                await asyncio.sleep(rng.uniform(0.2, 1.5))
                if proc.returncode is None:
                    proc.send_signal(signal.SIGKILL)
                    result.by_point["outside"] += 1
                await proc.wait()
                result.kills += 1
            elif crash:
                try:  # the step may not come again (nothing left to take): then killed from outside
                    await asyncio.wait_for(proc.wait(), 5)
                    where = env["BOUNCE_CRASHPOINT"].split(":")[0]
                except TimeoutError:
                    proc.send_signal(signal.SIGKILL)
                    await proc.wait()
                    where = "outside"
                if proc.returncode == -signal.SIGKILL:
                    result.kills += 1
                    result.by_point[where] += 1
                else:
                    result.other_exits.append(proc.returncode)
            else:  # the last run: no crash; stop once everything is there
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and tally(fake, world)[1] < tally(fake, world)[0]:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # anything doubled would show up now
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            result.log_tail = (await stderr_task).decode(errors="replace")[-4000:]
    expected, posted, duplicates = tally(fake, world)
    result.missing, result.duplicates = expected - posted, duplicates
    result.seconds = time.monotonic() - started
    return result
