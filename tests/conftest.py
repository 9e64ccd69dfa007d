"""Shared fixtures: the loopback Discord and a real Bounce bot running against it with a fixed clock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from bot import BounceBot
from coach.clock import FixedClock
from coach.settings import Settings
from tests.databases import database_url, drop_created, on_postgres
from tests.fakediscord.fixtures import fake_discord, run_client, stop_client  # noqa: F401
from tests.fakediscord.server import FakeDiscord

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday


@dataclass
class Studio:
    """One server as the tests see it: a check-in channel, an admin and two producers."""

    guild: int
    channel: int
    admin: int
    alice: int
    bob: int
    extra: dict[str, int] = field(default_factory=dict)


@dataclass
class Harness:
    fake: FakeDiscord
    db_path: Path
    clock: FixedClock
    studio: Studio
    bot: BounceBot | None = None
    task: object = None
    starts: int = 0

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "discord_token": self.fake.token,
            "database_url": database_url(self.db_path),
            "discord_api_base": self.fake.api_base,
            "discord_gateway_url": self.fake.gateway_url,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    async def start(self, **overrides: object) -> BounceBot:
        self.starts += 1
        bot = BounceBot(self.settings(**overrides), clock=self.clock, rng=random.Random(self.starts),
                        run_scheduler=False, guild_ready_timeout=0.05)
        self.task = await run_client(self.fake, bot)
        if bot.catch_up_task is not None:
            await bot.catch_up_task  # what fell due while the bot was down is handled before the test goes on
        rounds = bot.get_cog("Rounds")
        if rounds is not None:
            rounds.tally_delay = 0.05  # type: ignore[attr-defined]
        self.bot = bot
        return bot

    async def stop(self) -> None:
        if self.bot is not None:
            await stop_client(self.bot, self.task)  # type: ignore[arg-type]
            self.bot = None

    async def restart(self, **overrides: object) -> BounceBot:
        await self.stop()
        return await self.start(**overrides)

    async def slash(self, user: int, command: str, options: dict | None = None, *, channel: int | None = None,
                    guild: int | None = None):
        return await self.fake.slash(guild or self.studio.guild, channel or self.studio.channel, user, command,
                                     options or {})

    async def setup_checkin(self, time: str = "20:00", timezone: str = "Europe/Berlin", days: str | None = None,
                            **extra: object) -> str:
        options: dict = {"channel": self.studio.channel, "time": time, "timezone": timezone, **extra}
        if days:
            options["days"] = days
        handle = await self.slash(self.studio.admin, "coach setup", options)
        return await handle.wait_text()

    async def tick(self) -> None:
        assert self.bot is not None
        await self.bot.tick()

    def round_messages(self, channel: int | None = None) -> list[dict]:
        return [m for m in self.fake.messages[channel or self.studio.channel]
                if m.get("embeds") and m["embeds"][0].get("title", "").startswith("Accountability Check")]


def make_studio(fake: FakeDiscord, name: str = "Night Owls Studio") -> Studio:
    guild = fake.add_guild(name)
    channel = fake.add_channel(guild, "check-ins")
    admin = fake.add_member(guild, "Dana", admin=True)
    alice = fake.add_member(guild, "Alice")
    bob = fake.add_member(guild, "Bob")
    return Studio(guild, channel, admin, alice, bob)


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """On PostgreSQL, each test's databases go when it ends."""
    yield
    if on_postgres():
        drop_created()


@pytest_asyncio.fixture
async def harness(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[Harness]:  # noqa: F811
    studio = make_studio(fake_discord)
    h = Harness(fake_discord, tmp_path / "bounce.sqlite3", FixedClock(START), studio)
    try:
        yield h
    finally:
        await h.stop()


@pytest_asyncio.fixture
async def running(harness: Harness) -> AsyncIterator[Harness]:
    await harness.start()
    yield harness


async def eventually(predicate, timeout: float = 3.0):  # noqa: ANN001, ANN201, ASYNC109
    """Wait until `predicate()` is truthy (for work the bot does after answering); returns its value."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value or loop.time() > deadline:
            return value
        await asyncio.sleep(0.02)
