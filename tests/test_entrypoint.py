"""`python bot.py` as an operator runs it: pointed at a REST and gateway proxy (here the loopback Discord) by
DISCORD_API_BASE / DISCORD_GATEWAY_URL, it logs in, syncs, and shuts down cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.fakediscord.server import FakeDiscord

ROOT = Path(__file__).resolve().parent.parent


async def test_bot_py_runs_against_the_proxy_settings_and_stops_on_sigterm(fake_discord: FakeDiscord,
                                                                            tmp_path: Path) -> None:
    fake = fake_discord
    guild = fake.add_guild("Studio")
    fake.add_channel(guild, "check-ins")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_"))}
    env.update(DISCORD_TOKEN=fake.token, DISCORD_API_BASE=fake.api_base, DISCORD_GATEWAY_URL=fake.gateway_url,
               DATABASE_URL=f"sqlite:///{tmp_path / 'bounce.sqlite3'}", LOG_LEVEL="INFO")
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.wait_for(fake.ready.wait(), 30)
        for _ in range(200):  # wait for the command sync the bot does in setup_hook
            if fake.commands.get(None):
                break
            await asyncio.sleep(0.05)
        assert {c["name"] for c in fake.commands[None]} >= {"coach", "checkin", "leaderboard", "lesson"}
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = stderr.decode()
    assert proc.returncode == 0, log
    assert "shutting down" in log and "Traceback" not in log
    assert fake.token not in log  # the token is never logged
