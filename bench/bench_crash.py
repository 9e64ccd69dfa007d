"""The long kill -9 drill: `python bot.py` killed with SIGKILL again and again (inside the take, after it, before
a post, between a post and its record, after the record, and from outside at random moments) while every
server's round and lesson and every member's DM round fall due in the same minute; restarted each time on the
same database. Prints `N kills, 0 missing, 0 duplicates` and where the kills landed.

Usage: python bench/bench_crash.py [--servers 500] [--members 500] [--kills 60] [--budget 25]
Target: 0 missing, 0 duplicates. (tests/test_crash.py runs a short drill in CI: 100 + 100, 20 kills.)
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import _common  # noqa: F401  (puts the project on sys.path)

from tests.crashrun import build, drill
from tests.fakediscord.server import FakeDiscord


async def main(servers: int, members: int, kills: int, budget: float) -> int:
    fake = FakeDiscord()
    await fake.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "bounce.sqlite3"
            world = await build(fake, db, servers, members)
            result = await drill(fake, db, world, kills=kills, budget=budget, limit=1800)
    finally:
        await fake.stop()
    posts = 2 * servers + members
    print(f"{servers:,} servers (a round and a lesson each) and {members:,} DM members due in the same minute: "
          f"{posts:,} posts; bot.py restarted after every kill, send budget {budget:g}/s")
    print(f"kills by step: {dict(result.by_point)}; {result.seconds:.0f} s")
    if result.other_exits:
        print(f"runs that ended without a kill (exit codes): {result.other_exits}\n{result.log_tail}")
    print(f"{result.line()}  (target: 0 missing, 0 duplicates)  "
          f"{'OK' if (result.missing, result.duplicates) == (0, 0) else 'MISSED'}")
    return 0 if (result.missing, result.duplicates) == (0, 0) and result.kills >= kills and not result.other_exits else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=500)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--budget", type=float, default=25.0)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.servers, args.members, args.kills, args.budget)))
