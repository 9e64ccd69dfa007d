"""PostgreSQL for the tests that need one: a fresh database per test on the throwaway server that
BOUNCE_TEST_PG_URL points at (bash scripts/test-pg.sh starts one), the `?` -> `$n` rewrite, and one scripted
sequence of writes that runs on both databases."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from coach.storage.db import pg_sql
from tests.databases import PG_ADMIN_URL, database_url

PG_URL = PG_ADMIN_URL

#: A module that needs PostgreSQL starts with `if not PG_URL: pytest.skip(SKIP_REASON, allow_module_level=True)`.
SKIP_REASON = "BOUNCE_TEST_PG_URL is not set: `bash scripts/test-pg.sh` runs these on a throwaway PostgreSQL"

G, H = 1001, 1002          # two servers
A, B, C = 11, 12, 13       # three members
T = 1_772_000_000          # epoch seconds


def dollar_params(sql: str) -> str:
    """`?` placeholders as asyncpg's `$1, $2, ...`: the storage layer's own rewrite."""
    return pg_sql(sql)[0]


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """An empty database of its own on the test server (tests/databases.py drops it when the test ends)."""
    yield database_url(Path(f"fresh-{secrets.token_hex(6)}"), empty=True)


def script() -> Iterator[tuple[str, tuple[Any, ...]]]:
    """One sequence of writes that touches every trigger, plus a few reads; run on both databases."""
    day = 86_400
    gs = ("INSERT INTO guild_settings (guild_id, channel_id, time_local, timezone, days, next_due, created_at, "
          "updated_at) VALUES (?, ?, '09:00', 'Europe/Berlin', 127, ?, ?, ?)")
    yield gs, (G, 500, T + day, T, T)
    yield gs, (H, 600, None, T, T)
    yield ("INSERT INTO members (guild_id, user_id, display_name, announce, first_seen) "
           "VALUES (?, ?, 'ann', 1, ?), (?, ?, 'Bo', 0, ?), (?, ?, '_x', 1, ?), (?, ?, 'Émile', 1, ?)",
           (G, A, T, G, B, T, H, A, T, H, B, T))
    # Text compares and sorts by code point on both (in a C.UTF-8 database; en-US would say 'ann' < 'Bo').
    yield "SELECT display_name FROM members ORDER BY display_name", ()
    yield "SELECT COUNT(*) FROM members WHERE display_name < 'a'", ()

    # Nudges follow their server's next run: only enabled ones, only when next_due really changes.
    ns = ("INSERT INTO nudge_settings (guild_id, user_id, enabled, hours_before, next_due, on_at, created_at, "
          "updated_at) VALUES (?, ?, ?, ?, NULL, ?, ?, ?)")
    yield ns, (G, A, 1, 3, T, T, T)
    yield ns, (G, B, 0, 2, T, T, T)
    yield ns, (H, A, 1, 4, T, T, T)
    yield "UPDATE guild_settings SET next_due = ? WHERE guild_id = ?", (T + 2 * day, G)
    yield "UPDATE nudge_settings SET next_due = NULL WHERE guild_id = ? AND user_id = ?", (G, A)  # nudge taken
    yield "UPDATE guild_settings SET next_due = next_due, updated_at = ? WHERE guild_id = ?", (T + 1, G)  # same
    yield "SELECT guild_id, user_id, next_due FROM nudge_settings ORDER BY guild_id, user_id", ()
    yield "UPDATE nudge_settings SET next_due = 42 WHERE guild_id = ? AND user_id = ?", (G, A)
    yield "UPDATE guild_settings SET paused = 1 WHERE guild_id = ?", (G,)  # next_due not set: nothing follows
    yield "UPDATE guild_settings SET next_due = ? WHERE guild_id = ?", (T + 3 * day, H)
    yield "UPDATE guild_settings SET next_due = NULL WHERE guild_id = ?", (H,)
    yield "SELECT guild_id, user_id, next_due FROM nudge_settings ORDER BY guild_id, user_id", ()
    yield "UPDATE guild_settings SET next_due = ? WHERE guild_id IN (?, ?)", (T + 4 * day, G, H)

    # Check-ins and their days: a multi-row insert, upserts, moves, a delete; the foreign keys' SET NULL.
    rd = ("INSERT INTO rounds (guild_id, local_date, scheduled_at, channel_id, state, created_at) "
          "VALUES (?, ?, ?, 500, 'posted', ?)")
    yield rd, (G, "2026-03-02", T, T)
    yield rd, (G, "2026-03-03", T + day, T + day)
    yield ("INSERT INTO projects (guild_id, user_id, name, name_key, created_at) VALUES (?, ?, 'Song', 'song', ?)",
           (G, A, T))
    ci = "INSERT INTO checkins (guild_id, user_id, local_date, round_id, status, project_id, created_at, updated_at) "
    yield ci + "VALUES (?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?)", (
        G, A, "2026-03-02", 1, "finished", 1, T, T,
        G, B, "2026-03-02", 1, "unfinished", None, T, T,
        G, C, "2026-03-03", 2, "skipped", None, T, T)
    yield ci + "VALUES (?, ?, ?, NULL, 'finished', NULL, ?, ?)", (H, A, "2026-03-02", T, T)
    yield (ci + "VALUES (?, ?, ?, 1, 'unfinished', NULL, ?, ?) ON CONFLICT (guild_id, user_id, local_date) "
           "DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at", (G, A, "2026-03-02", T + 5, T + 5))
    yield (ci + "VALUES (?, ?, ?, 1, 'finished', NULL, ?, ?) ON CONFLICT (guild_id, user_id, local_date) "
           "DO UPDATE SET local_date = excluded.local_date, status = excluded.status",
           (G, A, "2026-03-02", T + 6, T + 6))
    yield "UPDATE checkins SET local_date = ? WHERE guild_id = ? AND user_id = ?", ("2026-03-03", G, B)
    yield "UPDATE checkins SET guild_id = ? WHERE guild_id = ? AND user_id = ?", (H, G, C)
    yield "UPDATE checkins SET note = 'x', local_date = local_date WHERE guild_id = ?", (G,)
    yield "DELETE FROM checkins WHERE guild_id = ? AND user_id = ? AND local_date = ?", (H, A, "2026-03-02")
    yield "DELETE FROM projects WHERE id = 1", ()
    yield "DELETE FROM rounds WHERE id = 2", ()

    # Board totals: periods of each kind, points of each kind before and after them, an ignored duplicate.
    yield "INSERT INTO seasons (guild_id, name, started_at) VALUES (?, 'S1', ?)", (G, T + 100)
    yield ("INSERT INTO board_periods (guild_id, kind, starts_at, season_id) "
           "VALUES (?, 'season', ?, 1), (?, 'week', ?, NULL), (?, 'month', ?, NULL)",
           (G, T + 100, G, T + 300, G, T + 200))
    pt = "INSERT INTO points (guild_id, user_id, kind, amount, ref, created_at) VALUES (?, ?, ?, ?, ?, ?)"
    for row in [(G, A, "checkin", 1, "2026-03-01", T + 50), (G, A, "checkin", 1, "2026-03-02", T + 150),
                (G, A, "finish", 5, "p1", T + 250), (G, A, "reflection", 2, "l1", T + 350),
                (G, A, "exercise", 1, "l1", T + 360), (G, A, "adjust", -3, "c1", T + 370),
                (G, B, "checkin", 1, "2026-03-02", T + 400), (H, A, "checkin", 1, "2026-03-02", T + 400)]:
        yield pt, row
    yield "INSERT INTO board_periods (guild_id, kind, starts_at) VALUES (?, 'week', ?)", (G, T + 1000)
    yield pt, (G, B, "finish", 5, "p2", T + 1100)
    yield ("INSERT INTO points (guild_id, user_id, kind, amount, ref, created_at) "
           "SELECT guild_id, user_id, 'checkin', 1, 'bulk-' || local_date, ? FROM checkins ORDER BY id",
           (T + 1150,))

    # Role marks: only in a server with a threshold reward (a weekly one does not count).
    rr = "INSERT INTO role_rewards (guild_id, kind, threshold, role_id, created_at) VALUES (?, ?, ?, ?, ?)"
    yield rr, (G, "weekly", 3, 900, T)
    yield pt, (G, C, "checkin", 1, "d1", T + 1200)
    yield "SELECT guild_id, user_id, seq FROM role_dirty ORDER BY 1, 2", ()
    yield rr, (G, "streak", 7, 901, T)
    yield pt, (G, C, "checkin", 1, "d2", T + 1300)
    yield pt, (G, C, "checkin", 1, "d3", T + 1310)
    yield pt, (H, C, "checkin", 1, "d3", T + 1310)
    # Ignored: no totals, no mark. (Last of the inserts: PostgreSQL spends an id on it, SQLite does not.)
    yield pt + " ON CONFLICT DO NOTHING", (G, C, "checkin", 7, "d2", T + 999)
    yield "SELECT guild_id, period_id, user_id, points, depth, reached_at FROM board_totals ORDER BY 1, 2, 3", ()

    # Deletes from the ledger: the latest counting point, then several at once.
    yield "DELETE FROM points WHERE guild_id = ? AND user_id = ? AND kind = 'adjust'", (G, A)
    yield "DELETE FROM points WHERE guild_id = ? AND user_id = ? AND kind IN ('reflection', 'checkin')", (G, A)
    yield "DELETE FROM points WHERE guild_id = ? AND user_id = ?", (G, B)

    yield ("INSERT INTO away_periods (guild_id, user_id, start_date, end_date) VALUES (?, ?, ?, ?), (?, ?, ?, ?)",
           (G, A, "2026-03-04", "2026-03-10", G, A, "2026-03-20", "2026-03-21"))
    # The naming rule, as SQL on both (a member without a row may be named).
    yield ("SELECT c.id, c.user_id, may_name_publicly(m.announce) FROM checkins c LEFT JOIN members m "
           "ON m.guild_id = c.guild_id AND m.user_id = c.user_id ORDER BY c.id", ())
    yield "SELECT user_id FROM members WHERE may_name_publicly(announce) = 1 ORDER BY user_id", ()
