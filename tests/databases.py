"""Which database a test runs on. By default a SQLite file under the test's tmp_path. With
`BOUNCE_TEST_PG_URL` set (an admin URL of a throwaway PostgreSQL server, as `scripts/test-pg.sh` starts one),
every test database is instead a fresh PostgreSQL database, copied from a template migrated once per run, and
dropped when the test ends: the same tests, on the other dialect."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_ADMIN_URL = os.environ.get("BOUNCE_TEST_PG_URL", "")
TEMPLATE = "bounce_template"
_created: list[str] = []
_template_ready = False
_lock = threading.Lock()

sqlite_only = pytest.mark.skipif(bool(PG_ADMIN_URL), reason="SQLite file behaviour (this run is on PostgreSQL)")


def on_postgres() -> bool:
    return bool(PG_ADMIN_URL)


def _url_for(name: str) -> str:
    parts = urlsplit(PG_ADMIN_URL)
    return urlunsplit(parts._replace(path="/" + name))


def _in_thread(coro_fn, *args):  # noqa: ANN001, ANN002, ANN202
    """Run a coroutine on its own loop in a thread: callable from sync code and from inside a running loop."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = asyncio.run(coro_fn(*args))
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _make_template() -> None:
    from coach.storage import Storage

    await _admin(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
    await _admin(f'CREATE DATABASE "{TEMPLATE}"')
    store = await Storage.open(_url_for(TEMPLATE))
    await store.close()


def database(path: Path, *, empty: bool = False) -> Path | str:
    """What Storage.open (and DATABASE_URL) should get for the test database `path` names: the path itself on
    SQLite; on PostgreSQL the URL of a database made for it (the same path gives the same database), migrated
    already unless `empty` (then the first Storage.open migrates it, as a new SQLite file is migrated)."""
    global _template_ready
    if not PG_ADMIN_URL:
        return path
    name = "t_" + hashlib.sha1(str(path).encode()).hexdigest()[:20]
    with _lock:
        if not _template_ready and not empty:
            _in_thread(_make_template)
            _template_ready = True
        if name not in _created:
            _in_thread(_admin, f'CREATE DATABASE "{name}"' if empty else
                       f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
            _created.append(name)
    return _url_for(name)


def database_url(path: Path, *, empty: bool = False) -> str:
    target = database(path, empty=empty)
    return target if isinstance(target, str) else f"sqlite:///{target}"


def drop_created() -> None:
    """Drop the PostgreSQL databases the test made (closing whatever it left connected)."""
    with _lock:
        names, _created[:] = list(_created), []
    for name in names:
        _in_thread(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
