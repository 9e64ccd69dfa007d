"""python -m coach.copydb: a community's SQLite database copied into an empty PostgreSQL one, verified."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from coach import copydb
from coach.members import may_name_publicly
from coach.storage import MIGRATIONS_DIR, Storage, migrations
from tests.pg_support import PG_URL, SKIP_REASON, fresh_database, script

if not PG_URL:
    pytest.skip(SKIP_REASON, allow_module_level=True)
ROOT = Path(__file__).resolve().parent.parent
T = 1_772_000_000


async def community(path: Path, *, migrations_dir: Path = MIGRATIONS_DIR) -> Path:
    """A SQLite database with a bit of everything: the schema test's script, then three busy servers."""
    await (await Storage.open(path, migrations_dir=migrations_dir)).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys=ON")
    db.create_function("may_name_publicly", 1, may_name_publicly, deterministic=True)
    if migrations_dir == MIGRATIONS_DIR:
        for sql, params in script():
            db.execute(sql, params)
    db.execute("BEGIN")
    for g in (2001, 2002, 2003):
        db.execute("INSERT INTO board_periods (guild_id, kind, starts_at) VALUES (?, 'month', ?)", (g, T))
        db.executemany("INSERT INTO members (guild_id, user_id, display_name, first_seen, public) "
                       "VALUES (?, ?, ?, ?, ?)", [(g, u, f"member {u} 'quoted' ✓", T, u % 2) for u in range(100)])
        for day in range(12):
            date = f"2026-03-{day + 1:02d}"
            db.executemany(
                "INSERT INTO checkins (guild_id, user_id, local_date, status, note, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(g, u, date, ("finished", "unfinished", "skipped")[u % 3], None if u % 4 else "a note",
                  T + day * 86_400 + u, T + day * 86_400 + u) for u in range(100) if (u + day) % 5])
            db.executemany(
                "INSERT INTO points (guild_id, user_id, kind, amount, ref, created_at) VALUES (?, ?, 'checkin', 1, ?, ?)",
                [(g, u, date, T + day * 86_400 + u) for u in range(100) if (u + day) % 5])
    db.execute("INSERT INTO meta (key, value) VALUES ('commands', 'abc123')")
    db.execute("COMMIT")
    db.close()
    return path


def rows_of(db: sqlite3.Connection, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cols = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
    order = ", ".join(str(i + 1) for i in range(len(cols)))
    return cols, [tuple(r) for r in db.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")]


async def test_a_community_arrives_whole_and_keeps_counting(tmp_path: Path) -> None:
    import asyncpg

    source = await community(tmp_path / "bounce.sqlite3")
    async with fresh_database() as url:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "coach.copydb", f"sqlite:///{source}", url, "--batch", "700",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, (err + out).decode()
        lines = out.decode().splitlines()
        lite = sqlite3.connect(source)
        tables = [r[0] for r in lite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        assert len(lines) == len(tables) + len(copydb.TOTALS) + 1
        assert lines[-1].startswith("OK: copied ")
        checkins = lite.execute("SELECT COUNT(*) FROM checkins").fetchone()[0]
        assert checkins > 2000
        assert any(line.split() == ["checkins", f"{checkins:,}", "rows"] for line in lines), lines

        conn = await asyncpg.connect(url)
        try:
            for table in tables:
                cols, want = rows_of(lite, table)
                if table == "schema_migrations":
                    want = [r[:2] for r in want]
                    cols = cols[:2]
                order = ", ".join(str(i + 1) for i in range(len(cols)))
                got = [tuple(r) for r in await conn.fetch(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")]
                assert got == want, table

            # Identities continue after the copied ids, and the triggers are on again.
            biggest = await conn.fetchval("SELECT MAX(id) FROM points")
            new_id = await conn.fetchval(
                "INSERT INTO points (guild_id, user_id, kind, amount, ref, created_at) "
                "VALUES (2001, 7, 'finish', 5, 'p9', $1) RETURNING id", T + 40 * 86_400)
            assert new_id == biggest + 1
            before = lite.execute("SELECT points FROM board_totals WHERE guild_id = 2001 AND user_id = 7 "
                                  "AND period_id = 0").fetchone()[0]
            assert await conn.fetchval("SELECT points FROM board_totals WHERE guild_id = 2001 AND user_id = 7 "
                                       "AND period_id = 0") == before + 5
            await conn.execute("INSERT INTO checkins (guild_id, user_id, local_date, status, created_at, updated_at) "
                               "VALUES (2001, 7, '2026-04-01', 'finished', $1, $1)", T)
            assert await conn.fetchval(
                "SELECT answers FROM checkin_days WHERE guild_id = 2001 AND local_date = '2026-04-01'") == 1
        finally:
            await conn.close()
            lite.close()


async def test_a_target_with_rows_is_refused_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncpg

    source = await community(tmp_path / "bounce.sqlite3")
    async with fresh_database() as url:
        # (main runs its own event loop: in a thread here)
        assert await asyncio.to_thread(copydb.main, [str(source), url]) == 0
        capsys.readouterr()
        assert await asyncio.to_thread(copydb.main, [str(source), url]) == 2
        err = capsys.readouterr().err
        assert "refused, no rows written" in err and "already holds Bounce rows" in err
        conn = await asyncpg.connect(url)
        try:
            lite = sqlite3.connect(source)
            assert await conn.fetchval("SELECT COUNT(*) FROM checkins") == lite.execute(
                "SELECT COUNT(*) FROM checkins").fetchone()[0]
            lite.close()
        finally:
            await conn.close()


async def test_a_migrated_but_unused_target_is_fine_and_its_meta_is_replaced(tmp_path: Path) -> None:
    import asyncpg

    source = await community(tmp_path / "bounce.sqlite3")
    async with fresh_database() as url:
        conn = await asyncpg.connect(url)
        try:
            assert await copydb.apply_baseline(conn)
            await conn.execute("INSERT INTO meta (key, value) VALUES ('commands', 'other')")
            lines: list[str] = []
            assert await copydb.copy(str(source), url, batch=1000, out=lines.append)
            assert await conn.fetchval("SELECT value FROM meta WHERE key = 'commands'") == "abc123"
            assert await conn.fetchval("SELECT COUNT(*) FROM schema_migrations") == len(migrations())
        finally:
            await conn.close()


async def test_an_older_source_or_a_foreign_target_is_refused(tmp_path: Path) -> None:
    import asyncpg

    old_dir = tmp_path / "migrations"
    old_dir.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("0*.sql"))[:10]:
        shutil.copy(path, old_dir / path.name)
    old = await community(tmp_path / "old.sqlite3", migrations_dir=old_dir)
    async with fresh_database() as url:
        with pytest.raises(copydb.Refused, match=f"schema version 10, the target at {len(migrations())}"):
            await copydb.copy(str(old), url)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            await conn.execute("CREATE TABLE invoices (id BIGINT)")
        finally:
            await conn.close()
        source = await community(tmp_path / "bounce.sqlite3")
        with pytest.raises(copydb.Refused, match="not an empty Bounce database"):
            await copydb.copy(str(source), url)
    with pytest.raises(copydb.Refused, match="no such SQLite file"):
        await copydb.copy(str(tmp_path / "missing.sqlite3"), PG_URL)


async def test_a_row_lost_on_the_way_fails_the_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = await community(tmp_path / "bounce.sqlite3")
    real = copydb._copy_table

    async def lossy(src: Any, conn: Any, t: copydb.Table, batch: int) -> int:
        n = await real(src, conn, t, batch)
        if t.name == "points":
            await conn.execute("DELETE FROM points WHERE id = (SELECT MAX(id) FROM points)")
        return n

    monkeypatch.setattr(copydb, "_copy_table", lossy)
    async with fresh_database() as url:
        lines: list[str] = []
        assert not await copydb.copy(str(source), url, out=lines.append)
    assert any(line.startswith("points") and "MISMATCH" in line for line in lines)
    assert any("ledger points per server DIFFER" in line for line in lines)
    assert lines[-1].startswith("FAILED:")
