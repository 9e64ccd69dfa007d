"""scripts/pg.sh: the throwaway server starts, answers at the URL it prints, and its stop fails on a server error."""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HAVE_SERVER = bool(os.environ.get("BOUNCE_PG_BIN") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))

if not HAVE_SERVER:
    pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): apt-get install postgresql",
                allow_module_level=True)


def pg_sh(state: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOUNCE_PG_DIR": state}
    return subprocess.run(["bash", str(ROOT / "scripts" / "pg.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=120)


async def query(url: str, sql: str) -> object:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def test_a_clean_run_stops_clean_and_a_server_error_fails_the_stop() -> None:
    # Directly under /tmp: the server's own user must be able to walk into it.
    state = f"/tmp/bounce-pg-selftest-{uuid.uuid4().hex[:8]}"
    try:
        started = pg_sh(state, "start")
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url.startswith("postgresql://bounce:") and "@127.0.0.1:" in url and url.endswith("/bounce")
        assert pg_sh(state, "url").stdout.strip() == url
        assert pg_sh(state, "start").stdout.strip() == url  # already running: the same server
        assert asyncio.run(query(url, "SHOW fsync")) == "off"
        assert asyncio.run(query(url, "SHOW max_connections")) == "300"
        stopped = pg_sh(state, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert not os.path.exists(state)

        url = pg_sh(state, "start").stdout.strip()

        async def divide() -> None:
            import asyncpg

            with pytest.raises(asyncpg.DivisionByZeroError):
                await query(url, "SELECT 1 / 0")

        asyncio.run(divide())
        stopped = pg_sh(state, "stop")
        assert stopped.returncode == 1
        assert "ERROR:  division by zero" in stopped.stderr
        assert os.path.exists(f"{state}.log")
    finally:
        pg_sh(state, "stop")
        for leftover in (f"{state}.log",):
            if os.path.exists(leftover):
                os.remove(leftover)
