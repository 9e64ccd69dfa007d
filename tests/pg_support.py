"""PostgreSQL for the tests that need one: a fresh database per test on the throwaway server that
BOUNCE_TEST_PG_URL points at (bash scripts/test-pg.sh starts one), and the `?` -> `$n` rewrite."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_URL = os.environ.get("BOUNCE_TEST_PG_URL", "")

#: Every test of a module that needs PostgreSQL: `pytestmark = needs_pg`.
needs_pg = pytest.mark.skipif(
    not PG_URL, reason="BOUNCE_TEST_PG_URL is not set: `bash scripts/test-pg.sh` runs these on a throwaway PostgreSQL")


def dollar_params(sql: str) -> str:
    """`?` placeholders as asyncpg's `$1, $2, ...` (a `?` inside a quoted string stays)."""
    parts = re.split(r"('(?:[^']|'')*')", sql)
    n = 0

    def number(_: re.Match[str]) -> str:
        nonlocal n
        n += 1
        return f"${n}"

    return "".join(p if p.startswith("'") else re.sub(r"\?", number, p) for p in parts)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """An empty database of its own on the test server; dropped afterwards. Yields its URL."""
    import asyncpg

    name = f"bounce_t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(PG_URL, name)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
