"""The foundation, end to end: login, READY, command sync, /coach setup and /coach show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Harness

ROOT = Path(__file__).resolve().parent.parent


async def test_bot_logs_in_syncs_once_and_not_again(harness: Harness) -> None:
    bot = await harness.start()
    fake = harness.fake
    assert fake.identify_count == 1
    assert bot.get_guild(harness.studio.guild) is not None
    names = {c["name"] for c in fake.commands[None]}
    assert {"coach", "checkin", "project"} <= names
    writes = fake.command_writes
    assert bot.synced
    # Intents: only what features need, nothing privileged.
    assert fake.intents is not None and fake.intents & ((1 << 1) | (1 << 8) | (1 << 15)) == 0
    bot = await harness.restart()
    assert not bot.synced
    assert fake.command_writes == writes


async def test_setup_then_show_round_trip(running: Harness) -> None:
    text = await running.setup_checkin("20:00", "Europe/Berlin", "weekdays")
    assert "20:00" in text and "Europe/Berlin" in text and "weekdays" in text
    # 2026-03-02 12:00 UTC is 13:00 in Berlin: next run is today at 20:00 local = 19:00 UTC.
    assert "<t:1772478000:F>" in text
    guild = await running.bot.storage.get_guild(running.studio.guild)
    assert guild is not None and guild.time_local == "20:00" and guild.days == 0b11111
    show = await running.slash(running.studio.admin, "coach show")
    shown = await show.wait_text()
    assert show.ephemeral
    assert f"<#{running.studio.channel}>" in shown and "Europe/Berlin" in shown and "<t:1772478000:F>" in shown


async def test_setup_bad_inputs_are_ephemeral_and_store_nothing(running: Harness) -> None:
    cases = [
        ({"time": "25:99"}, "`25:99` is not a time; use 24-hour `HH:MM`, e.g. `20:00`"),
        ({"timezone": "Mars/Olympus"}, "`Mars/Olympus` is not a time zone"),
        ({"days": "someday"}, "`someday` is not a day"),
    ]
    for override, expected in cases:
        options = {"channel": running.studio.channel, "time": "20:00", "timezone": "Europe/Berlin", **override}
        handle = await running.slash(running.studio.admin, "coach setup", options)
        text = await handle.wait_text()
        assert expected in text, text
        assert handle.ephemeral
    assert await running.bot.storage.get_guild(running.studio.guild) is None


async def test_setup_refuses_a_channel_the_bot_cannot_post_in(running: Harness) -> None:
    fake, studio = running.fake, running.studio
    secret = fake.add_channel(studio.guild, "locked", overwrites=[
        {"id": str(fake.bot_role_id(studio.guild)), "type": 0, "allow": "0", "deny": str(1 << 11)},
    ])
    await fake.sync()
    handle = await running.slash(studio.admin, "coach setup",
                                 {"channel": secret, "time": "20:00", "timezone": "UTC"})
    text = await handle.wait_text()
    assert "Send Messages" in text and handle.ephemeral
    assert await running.bot.storage.get_guild(studio.guild) is None


async def test_show_before_setup_explains(running: Harness) -> None:
    handle = await running.slash(running.studio.admin, "coach show")
    assert "`/coach setup`" in await handle.wait_text()


async def test_timezone_autocomplete_offers_at_most_25(running: Harness) -> None:
    handle = await running.fake.autocomplete(running.studio.guild, running.studio.channel, running.studio.admin,
                                             "coach setup", {"timezone": "America"}, "timezone")
    await handle.response()
    choices = handle.choices
    assert choices and len(choices) <= 25 and all(c["value"].startswith("America/") for c in choices)
    handle = await running.fake.autocomplete(running.studio.guild, running.studio.channel, running.studio.admin,
                                             "coach setup", {"timezone": "berl"}, "timezone")
    await handle.response()
    assert handle.choices[0]["value"] == "Europe/Berlin"


async def test_unexpected_error_gives_a_reference(running: Harness, caplog) -> None:  # noqa: ANN001
    async def boom(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("database on fire")

    running.bot.storage.get_guild = boom  # type: ignore[method-assign]
    handle = await running.slash(running.studio.admin, "coach show")
    text = await handle.wait_text()
    assert "reference" in text and handle.ephemeral
    assert "database on fire" in caplog.text


def test_bot_without_token_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_"))}
    result = subprocess.run([sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["bounce: DISCORD_TOKEN is not set; put it in the environment or in .env (see .env.example)."]
