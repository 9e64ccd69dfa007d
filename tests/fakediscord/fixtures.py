"""pytest fixtures and helpers for the loopback Discord.

Import into a conftest.py:  ``from tests.fakediscord.fixtures import fake_discord, run_client, stop_client``

Construct bots with a short ``guild_ready_timeout`` (e.g. ``commands.Bot(..., guild_ready_timeout=0.05)``):
discord.py otherwise waits 2 s after READY for more GUILD_CREATEs before it fires on_ready.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import discord
import pytest
import pytest_asyncio
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from .server import FakeDiscord

_SAVED: dict[int, tuple[str, yarl.URL]] = {}  # client -> discord.py's globals before the first client started
@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord (contract-checked). The test fails if any violation was recorded;
    tests that provoke violations on purpose should consume them with ``fake.take_violations()``."""
    fake = FakeDiscord()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    if fake.violations:
        pytest.fail("Discord contract violations:\n  " + "\n  ".join(fake.violations), pytrace=False)


async def run_client(fake: FakeDiscord, client: discord.Client, *, timeout: float = 10.0) -> asyncio.Task:  # noqa: ASYNC109
    """Point discord.py at `fake`, start `client`, and return once the client is ready
    (an AutoShardedClient: every shard). Several clients may run at once (several shards' processes).

    Route.BASE / DiscordWebSocket.DEFAULT_GATEWAY are process globals: stop_client() of the last client running
    restores them.
    """
    _SAVED.setdefault(id(client), next(iter(_SAVED.values()), (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)))
    Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    task = asyncio.create_task(client.start(fake.token), name="fakediscord-client")

    async def ready() -> None:
        await fake.ready.wait()  # set by the first IDENTIFY (of any client)
        while True:
            try:
                await client.wait_until_ready()
                return
            except RuntimeError:  # this client's login() has not created its ready event yet
                await asyncio.sleep(0.005)

    waiter = asyncio.create_task(ready())
    done, _ = await asyncio.wait({task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        _forget(client)
        if task in done:
            task.result()  # re-raise the client's startup error
            raise RuntimeError("client stopped before it was ready")
        task.cancel()
        raise TimeoutError(f"client not ready within {timeout}s; requests: {fake.describe_requests()}")
    return task


def _forget(client: discord.Client) -> None:
    saved = _SAVED.pop(id(client), None)
    if saved is not None and not _SAVED:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


async def stop_client(client: discord.Client, task: asyncio.Task | None = None) -> None:
    """Close the client, await its task; the last client running restores discord.py's globals."""
    try:
        await client.close()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5.0)
    finally:
        _forget(client)


@contextlib.asynccontextmanager
async def running_client(fake: FakeDiscord, client: discord.Client) -> AsyncIterator[discord.Client]:
    task = await run_client(fake, client)
    try:
        yield client
    finally:
        await stop_client(client, task)
