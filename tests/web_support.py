"""Shared by the web tests: a bot with its web server on, a small community with a few days of history, and
plain HTTP requests to the page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp

from bot import BounceBot
from tests.conftest import Harness

URL_RE = re.compile(r"https?://\S+/s/[A-Za-z0-9_-]+")
MALLORY = '<Script>Alert(1)</Script>&"Mo"'  # a display name full of markup (Discord allows 32 characters)
FIRST_ROUND = datetime(2026, 3, 2, 19, 0, 5, tzinfo=UTC)  # Monday 20:00 in Berlin


def web(bot: BounceBot):  # noqa: ANN201
    cog = bot.get_cog("Web")
    assert cog is not None and cog.server is not None, "the web server is not running"  # type: ignore[attr-defined]
    return cog


def base_url(bot: BounceBot) -> str:
    return f"http://127.0.0.1:{web(bot).server.port}"


async def get(url: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text(), dict(response.headers)


async def page_on(h: Harness, action: str = "on") -> str:
    """`/coach web action:<action>` as the admin; the page address from the answer."""
    handle = await h.slash(h.studio.admin, "coach web", {"action": action})
    text = await handle.wait_text()
    assert handle.ephemeral
    found = URL_RE.search(text)
    assert found, text
    return found.group(0)


@dataclass
class Community:
    mallory: int
    quiet: int


async def build_community(h: Harness, days: int = 3) -> Community:
    """Rounds on `days` consecutive days: Alice and Bob answer every one, Mallory (a name full of markup) the
    last two, Quinn (announcements off) the first. Alice and Quinn finish a track on the last day."""
    s = h.studio
    mallory = h.fake.add_member(s.guild, MALLORY)
    quiet = h.fake.add_member(s.guild, "Quinn Quiet")
    await h.fake.sync()
    await h.setup_checkin("20:00", "Europe/Berlin")
    for day in range(days):
        h.clock.set(FIRST_ROUND + timedelta(days=day))
        await h.tick()
        answering = [s.alice, s.bob] + ([mallory] if day >= days - 2 else []) + ([quiet] if day == 0 else [])
        for user in answering:
            handle = await h.slash(user, "checkin", {"status": "finished" if user == s.alice else "unfinished"})
            assert "Logged" in await handle.wait_text()
    handle = await h.slash(quiet, "me announce", {"switch": "off"})
    await handle.wait_text()
    for user, track in ((s.alice, "Night Drive <EP>"), (quiet, "Secret Sketch")):
        handle = await h.slash(user, "project start", {"name": track})
        await handle.wait_text()
        handle = await h.slash(user, "project finish", {"name": track})
        await handle.wait_text()
    return Community(mallory, quiet)
