"""Two `python bot.py` processes, one shard each (SHARD_COUNT=2), on one database (PostgreSQL in the PostgreSQL
run, one SQLite file otherwise), against the loopback Discord: 200 servers' rounds and lessons fall due in the
same minute. Every post goes out exactly once, each by the process of its server's shard; every interaction is
answered exactly once, by that process; one process is killed with SIGKILL mid-fan-out and restarted, and
nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from coach.shards import shard_of
from coach.storage import Storage
from tests.crashrun import ROOT, build, tally
from tests.databases import database, database_url
from tests.fakediscord.server import FakeDiscord

COUNT = 2
SERVERS = 200


def posted_on(fake: FakeDiscord, guilds: list[tuple[int, int]], shard: int) -> int:
    return sum(1 for g, c in guilds if shard_of(g, COUNT) == shard
               for m in fake.messages[c] if m.get("embeds"))


async def until(predicate, timeout: float, what: str) -> None:  # noqa: ANN001, ASYNC109
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_two_shard_processes_post_everything_once_each_by_its_shard(fake_discord: FakeDiscord,
                                                                          tmp_path: Path) -> None:
    fake = fake_discord
    db = tmp_path / "bounce.sqlite3"
    world = await build(fake, db, servers=SERVERS, dm_members=0, shards=COUNT)
    assert {shard_of(g, COUNT) for g, _ in world.guilds} == {0, 1}
    admins = {g: fake.add_member(g, "Dana", admin=True) for g, _ in world.guilds[:20]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_", "BOUNCE_", "SHARD"))}
    env.update(DISCORD_TOKEN=fake.token, DISCORD_API_BASE=fake.api_base, DISCORD_GATEWAY_URL=fake.gateway_url,
               DATABASE_URL=database_url(db), LOG_LEVEL="INFO", SEND_BUDGET_PER_SECOND="40", TICK_SECONDS="2",
               OUTBOX_LEASE_SECONDS="5", SHARD_COUNT=str(COUNT))
    procs: dict[int, asyncio.subprocess.Process] = {}
    logs: list[bytes] = []

    async def start(shard: int) -> None:
        before = fake.identify_count
        procs[shard] = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env={**env, "SHARD_IDS": str(shard), "INSTANCE_ID": f"shard-{shard}"})
        await until(lambda: fake.identify_count > before, 30, f"shard {shard} to connect")

    async def ask_every_admin() -> None:
        handles = [await fake.slash(g, c, admins[g], "coach show") for g, c in world.guilds if g in admins]
        for handle in handles:
            assert await handle.wait_text(timeout=15)
        await fake.sync()
        await asyncio.sleep(0.3)  # an answer from the wrong process, or a second one, would arrive by now
        assert [fake.callbacks(h.id) for h in handles] == [1] * len(handles)

    try:
        await start(0)
        await start(1)
        await ask_every_admin()
        # Kill shard 0's process in the middle of its fan-out; shard 1 goes on; shard 0 comes back.
        await until(lambda: posted_on(fake, world.guilds, 0) >= 30, 60, "shard 0 to post 30")
        procs[0].send_signal(signal.SIGKILL)
        await procs[0].wait()
        logs.append(await procs[0].stderr.read())  # type: ignore[union-attr]
        killed_at = posted_on(fake, world.guilds, 0)
        await start(0)
        await ask_every_admin()
        await until(lambda: tally(fake, world)[1] == tally(fake, world)[0], 120, "every post")
        await asyncio.sleep(1.5)  # anything doubled would show up now
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            logs.append(await proc.stderr.read())  # type: ignore[union-attr]
    log = b"".join(logs).decode(errors="replace")
    expected, posted, duplicates = tally(fake, world)
    assert (expected - posted, duplicates) == (0, 0), log[-4000:]
    assert expected == 2 * SERVERS and killed_at < SERVERS  # the kill came before shard 0 was done
    assert "Traceback" not in log, log[-4000:]
    store = await Storage.open(database(db))
    try:
        owners = await store.fetchall("SELECT guild_id, lease_owner FROM outbox WHERE kind IN ('round', 'lesson')")
    finally:
        await store.close()
    assert len(owners) == 2 * SERVERS
    assert all(owner == f"shard-{shard_of(guild, COUNT)}" for guild, owner in owners), owners
