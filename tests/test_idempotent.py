"""Atomic and idempotent (issue 9, item 6): double submits answer as the first did, finishing a project and
its +5 are one transaction, and two processes starting on one fresh database migrate it once."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coach import projects
from coach.errors import Conflict
from coach.storage import Storage, migrations
from tests.conftest import Harness, eventually
from tests.databases import database, sqlite_only
from tests.test_rounds import buttons, posted_round

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


async def test_the_same_form_submitted_twice_at_once_answers_twice_alike_and_logs_once(running: Harness) -> None:
    h, alice = running, running.studio.alice
    message = await posted_round(h)
    click = await h.fake.click(message, buttons(message)["Finished"], alice)
    await click.response()
    modal = click.modal
    fields = {"project": "Night Drive EP", "note": "bounced the rough mix"}
    first, second = await asyncio.gather(h.fake.submit_modal(modal["custom_id"], fields, alice),
                                         h.fake.submit_modal(modal["custom_id"], fields, alice))
    texts = [await first.wait_text(), await second.wait_text()]
    assert texts[0] == texts[1] and "(+1 point)" in texts[0] and "New project started" in texts[0]
    storage, guild = h.bot.storage, h.studio.guild
    assert len(await storage.member_checkins(guild, alice)) == 1
    assert await storage.points_total(guild, alice, ["checkin"]) == 1
    assert await storage.count_projects(guild, alice) == {"active": 1, "finished": 0, "dropped": 0}
    # A real second answer later is an edit, as ever.
    h.bot.get_cog("Rounds").repeats.window = 0
    again = await h.slash(alice, "checkin", {"status": "skipped"})
    assert "no extra points" in await again.wait_text()


async def test_a_double_dm_form_submit_answers_alike(running: Harness) -> None:
    from tests.test_dm import at, dm_on, dm_rounds, utc

    h, alice = running, running.studio.alice
    await h.setup_checkin("20:00", "Europe/Berlin")
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    [dm] = dm_rounds(h, alice)
    click = await h.fake.click(dm, buttons(dm)["Unfinished"], alice)
    await click.response()
    fields = {"project": "", "note": "the hook"}
    first, second = await asyncio.gather(h.fake.submit_modal(click.modal["custom_id"], fields, alice),
                                         h.fake.submit_modal(click.modal["custom_id"], fields, alice))
    assert await first.wait_text() == await second.wait_text()
    assert await h.bot.storage.points_total(h.studio.guild, alice, ["checkin"]) == 1


async def test_project_start_and_finish_submitted_twice_at_once(running: Harness) -> None:
    h, alice = running, running.studio.alice
    await h.setup_checkin("20:00", "Europe/Berlin")
    starts = await asyncio.gather(*(h.slash(alice, "project start", {"name": "Night Drive EP"}) for _ in range(2)))
    texts = [await s.wait_text() for s in starts]
    assert texts[0] == texts[1] and texts[0].startswith("Started **Night Drive EP**")
    finishes = await asyncio.gather(*(h.slash(alice, "project finish", {"name": "Night Drive EP"}) for _ in range(2)))
    texts = [await f.wait_text() for f in finishes]
    assert texts[0] == texts[1] and "(+5 points)" in texts[0]
    storage, guild = h.bot.storage, h.studio.guild
    assert await storage.count_projects(guild, alice) == {"active": 0, "finished": 1, "dropped": 0}
    assert await storage.points_total(guild, alice, ["finish"]) == 5
    await eventually(lambda: h.fake.messages[h.studio.channel], 0.5)
    await asyncio.sleep(0.1)
    assert len(h.fake.messages[h.studio.channel]) == 1  # celebrated once


async def test_racing_creates_of_one_project_get_the_one_row(tmp_path: Path) -> None:
    storage = await Storage.open(database(tmp_path / "s.sqlite3"))
    try:
        results = await asyncio.gather(*(storage.create_or_get_project(1, 2, "Night Drive EP", None, NOW)
                                         for _ in range(5)))
        assert len({p.id for p, _ in results}) == 1 and [c for _, c in results].count(True) == 1
        with pytest.raises(Conflict):
            await projects.start(storage, 1, 2, "night drive ep", None, NOW)
    finally:
        await storage.close()


@sqlite_only
async def test_finish_and_its_points_are_one_transaction(tmp_path: Path) -> None:
    storage = await Storage.open(tmp_path / "s.sqlite3")
    try:
        project = await projects.start(storage, 1, 2, "Night Drive EP", None, NOW)
        # The ledger refuses the +5 (as a crash between the two writes would lose it): the finish must not stay.
        await storage.execute("CREATE TEMP TRIGGER no_points BEFORE INSERT ON points "
                              "BEGIN SELECT RAISE(ABORT, 'ledger unavailable'); END")
        with pytest.raises(sqlite3.DatabaseError):
            await projects.finish(storage, 1, 2, "Night Drive EP", NOW)
        assert (await storage.get_project(project.id)).status == "active"
        await storage.execute("DROP TRIGGER no_points")
        outcome = await projects.finish(storage, 1, 2, "Night Drive EP", NOW)
        assert outcome.points == 5 and (await storage.get_project(project.id)).status == "finished"
        assert await storage.points_total(1, 2, ["finish"]) == 5
        assert await storage.finish_project(project, 5, NOW) == (False, False)  # again: nothing more
        assert await storage.points_total(1, 2, ["finish"]) == 5
    finally:
        await storage.close()


async def test_two_processes_opening_a_fresh_database_migrate_it_once(tmp_path: Path) -> None:
    for attempt in range(3):  # a few rounds: the race is real (two connections; on PostgreSQL, two pools)
        path = database(tmp_path / f"fresh{attempt}.sqlite3", empty=True)
        opened = await asyncio.gather(Storage.open(path), Storage.open(path))
        try:
            known = [v for v, _, _ in migrations()]  # PostgreSQL's baseline records the same versions
            for storage in opened:
                assert await storage.schema_version() == known[-1]
            rows = await opened[0].fetchall("SELECT version FROM schema_migrations ORDER BY version")
            assert [r[0] for r in rows] == known
        finally:
            for storage in opened:
                await storage.close()


async def test_repeats_answers_a_copy_as_the_first_and_stays_bounded() -> None:
    from coach.errors import BadInput
    from cogs.common import Repeats

    repeats, calls = Repeats(window=60, limit=3), []

    async def work(value: str) -> str:
        calls.append(value)
        await asyncio.sleep(0.01)
        return f"done {value} #{len(calls)}"

    first, copy = await asyncio.gather(repeats.once("a", lambda: work("a")), repeats.once("a", lambda: work("a")))
    assert first == copy == "done a #1" and calls == ["a"]

    async def bad() -> str:
        calls.append("bad")
        raise BadInput("no")

    for _ in range(2):  # the copy gets the first one's error, without running again
        with pytest.raises(BadInput):
            await repeats.once("b", bad)
    assert calls == ["a", "bad"]
    for key in ("c", "d", "e"):
        await repeats.once(key, lambda key=key: work(key))
    assert len(repeats._seen) <= 3
    repeats.window = 0  # outside the window, the same request runs again
    assert await repeats.once("a", lambda: work("a")) != first


async def test_a_migration_that_breaks_a_constraint_fails_and_is_not_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_broken.sql").write_text("CREATE TABLE t (x INTEGER UNIQUE);\nINSERT INTO t VALUES (1);\n"
                                           "INSERT INTO t VALUES (1);\n")
    with pytest.raises(sqlite3.IntegrityError):
        await Storage.open(tmp_path / "s.sqlite3", migrations_dir=folder)
    (folder / "001_broken.sql").write_text("CREATE TABLE t (x INTEGER UNIQUE);\n")
    storage = await Storage.open(tmp_path / "s.sqlite3", migrations_dir=folder)
    try:
        assert await storage.schema_version() == 1
    finally:
        await storage.close()
