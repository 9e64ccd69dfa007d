"""Storage: migrations applied in order and recorded; a database newer than the code refuses to start."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coach.storage import DatabaseTooNew, Storage, migrations
from tests.databases import database, sqlite_only

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


@sqlite_only
async def test_migrations_apply_in_order_and_are_recorded(tmp_path: Path) -> None:
    store = await Storage.open(tmp_path / "b.sqlite3")
    try:
        known = migrations()
        assert await store.schema_version() == len(known)
        rows = await store.fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == list(range(1, len(known) + 1))
        mode = await store.fetchone("PRAGMA journal_mode")
        assert mode[0] == "wal"
        assert (await store.fetchone("PRAGMA foreign_keys"))[0] == 1
    finally:
        await store.close()
    again = await Storage.open(tmp_path / "b.sqlite3")  # reopening applies nothing twice
    assert await again.schema_version() == len(migrations())
    await again.close()


@sqlite_only
async def test_database_newer_than_code_refuses(tmp_path: Path) -> None:
    db = tmp_path / "b.sqlite3"
    await (await Storage.open(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, '999_future.sql')")
    with pytest.raises(DatabaseTooNew, match="schema version 999"):
        await Storage.open(db)


OFFLINE = {"DISCORD_API_BASE": "http://127.0.0.1:9/api/v10", "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/"}


@sqlite_only
def test_bot_refuses_a_newer_database_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "future.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                     "applied_at TEXT NOT NULL DEFAULT 'x')")
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, '999_future.sql')")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_"))} | OFFLINE
    env.update(DISCORD_TOKEN="not-a-real-token", DATABASE_URL=f"sqlite:///{db}")
    result = subprocess.run([sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "schema version 999" in result.stderr and "Traceback" not in result.stderr


def test_bot_says_in_one_line_that_postgresql_is_unreachable_without_its_password(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a free port: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_"))} | OFFLINE
    env.update(DISCORD_TOKEN="not-a-real-token", DATABASE_URL=f"postgresql://bounce:hunter2@127.0.0.1:{port}/b")
    result = subprocess.run([sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert f"bounce:***@127.0.0.1:{port}/b: cannot connect" in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_malformed_setting_exits_2_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_"))} | OFFLINE
    env.update(DISCORD_TOKEN="x", LOG_LEVEL="loud")
    result = subprocess.run([sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bounce: LOG_LEVEL is malformed: Value error, use DEBUG, INFO, WARNING, ERROR or CRITICAL."]


async def test_checkin_upsert_gives_one_point_per_date(tmp_path: Path) -> None:
    store = await Storage.open(database(tmp_path / "b.sqlite3"))
    try:
        for status in ("finished", "unfinished", "skipped"):
            await store.upsert_checkin(guild_id=1, user_id=2, local_date="2026-03-02", round_id=None, status=status,
                                       project_id=None, note=None, via="command", now=NOW)
        assert await store.points_total(1, 2, ["checkin"]) == 1
        assert (await store.get_checkin(1, 2, "2026-03-02")).status == "skipped"
        assert await store.points_total(9, 2, ["checkin"]) == 0  # another server sees nothing
    finally:
        await store.close()


def test_broken_prompt_file_stops_the_bot_at_start(tmp_path: Path) -> None:
    import shutil

    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    replies = prompts / "replies.toml"
    text = replies.read_text(encoding="utf-8")
    start = text.index("[valley]")
    first_line = text.index('"', text.index("lines", start))
    replies.write_text(text[:first_line + 1] + "{mood} " + text[first_line + 1:], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_"))} | OFFLINE
    env.update(DISCORD_TOKEN="x", PROMPTS_DIR=str(prompts), DATABASE_URL=f"sqlite:///{tmp_path / 'b.sqlite3'}")
    result = subprocess.run([sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "replies.toml [valley]" in result.stderr and "{mood}" in result.stderr and "Traceback" not in result.stderr


async def test_a_rolled_back_transaction_never_takes_a_concurrent_write_with_it(tmp_path: Path) -> None:
    import asyncio

    store = await Storage.open(database(tmp_path / "b.sqlite3"))
    opened = asyncio.Event()

    async def failing_transaction() -> None:
        async with store.transaction() as db:
            await db.execute("INSERT INTO meta (key, value) VALUES ('doomed', 'x')")
            opened.set()
            await asyncio.sleep(0.05)
            raise RuntimeError("boom")

    try:
        task = asyncio.create_task(failing_transaction())
        await opened.wait()
        await store.set_meta("kept", "yes")  # waits for the transaction instead of joining it
        with pytest.raises(RuntimeError):
            await task
        assert await store.get_meta("kept") == "yes"
        assert await store.get_meta("doomed") is None
    finally:
        await store.close()
