"""Loopback Discord for tests: a local aiohttp server discord.py 2.7 talks to as if it were Discord.

See README.md in this folder. Typical use (fixtures in tests/fakediscord/fixtures.py)::

    fake.add_guild(...); bot = make_bot(); task = await run_client(fake, bot)
    handle = await fake.slash(gid, cid, uid, "coach setup", {"channel": cid})
    assert "saved" in await handle.wait_text()
"""

from .contract import DEFAULT_SPEC, load_contract
from .interactions import InteractionHandle, message_text, public
from .server import ApiError, FakeDiscord, Recorded
from .world import FakeDiscordError, overwrite

__all__ = [
    "DEFAULT_SPEC",
    "ApiError",
    "FakeDiscord",
    "FakeDiscordError",
    "InteractionHandle",
    "Recorded",
    "load_contract",
    "message_text",
    "overwrite",
    "public",
]
