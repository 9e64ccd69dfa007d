"""`python bot.py` as an operator runs it: pointed at a REST and gateway proxy (here the loopback Discord) by
DISCORD_API_BASE / DISCORD_GATEWAY_URL, it logs in, syncs, and shuts down cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
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
               DATABASE_URL=f"sqlite:///{tmp_path / 'bounce.sqlite3'}", LOG_LEVEL="INFO", TICK_SECONDS="0.2")
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.wait_for(fake.ready.wait(), 30)
        for _ in range(200):  # wait for the command sync the bot does in setup_hook
            if fake.commands.get(None):
                break
            await asyncio.sleep(0.05)
        assert {c["name"] for c in fake.commands[None]} >= {"coach", "checkin", "leaderboard", "lesson"}
        # A DM that starts with the bot's mention is a check-in reply, never an unknown text command.
        member = fake.add_member(guild, "Alice")
        await fake.dm_message(member, f"<@{fake.bot_user_id}> finished the bassline")
        dm_channel = int(fake.dm_channel(member)["id"])
        for _ in range(200):
            if fake.messages[dm_channel]:
                break
            await asyncio.sleep(0.05)
        assert "I only read replies to a DM check-in" in fake.messages[dm_channel][0]["content"]
        await asyncio.sleep(1.0)  # several ticks of the periodic job
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
    # Operators read one line per thing that happened: no line per tick, no voice warnings, no command errors.
    assert "apscheduler" not in log and "Running job" not in log, log
    assert "voice will NOT be supported" not in log and "CommandNotFound" not in log, log


async def test_discord_unreachable_at_start_is_one_line_and_retries_until_stopped(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_"))}
    env.update(DISCORD_TOKEN="not-a-real-token", DISCORD_API_BASE=f"http://127.0.0.1:{port}/api/v10",
               DISCORD_GATEWAY_URL=f"ws://127.0.0.1:{port}", DATABASE_URL=f"sqlite:///{tmp_path / 'b.sqlite3'}",
               LOG_LEVEL="INFO")
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        while b"cannot reach Discord" not in line:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
        await asyncio.sleep(3.5)  # retries at 1 s and 2 s after the first
        assert proc.returncode is None  # still trying, not exited
        proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = line.decode() + rest.decode()
    assert proc.returncode == 0, log
    assert log.count("cannot reach Discord") == 1 and f"127.0.0.1:{port}" in log
    assert "Traceback" not in log and "shutting down" in log


def test_an_empty_token_in_env_file_says_it_is_empty(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DISCORD_TOKEN=\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_"))}
    result = subprocess.run([sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bounce: DISCORD_TOKEN is empty; put its value after `DISCORD_TOKEN=` in the environment or in .env "
        "(see .env.example)."]
