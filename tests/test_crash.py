"""Crash safety, proven from the outside: `python bot.py` killed with SIGKILL at 20+ points while 100 servers'
rounds and lessons and 100 members' DM rounds fall due in the same minute, restarted each time on the same
database. Afterwards: exactly one of each, none missing. (bench/bench_crash.py runs the long drill.)"""

from __future__ import annotations

from pathlib import Path

from tests.crashrun import build, drill
from tests.fakediscord.server import FakeDiscord


async def test_kill_9_anywhere_loses_nothing_and_posts_nothing_twice(fake_discord: FakeDiscord,
                                                                     tmp_path: Path) -> None:
    db = tmp_path / "bounce.sqlite3"
    world = await build(fake_discord, db, servers=100, dm_members=100)
    result = await drill(fake_discord, db, world, kills=20)
    print(result.line(), dict(result.by_point), result.other_exits)
    assert result.kills >= 20 and result.other_exits == [], (result.other_exits, result.log_tail)
    assert (result.missing, result.duplicates) == (0, 0), result.line() + "\n" + result.log_tail
    assert "Traceback" not in result.log_tail, result.log_tail
