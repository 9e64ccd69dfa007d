"""What every aggregate module builds on: the database's calls, and helpers shared by the modules."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from coach.storage.db import Database, Row, Tx

__all__ = ["BOARD_KINDS", "DEPTH_KINDS", "Base", "Tx", "id_values", "row_as"]

#: Ledger kinds that are depth points: a reflection (+2) and a Your Turn exercise marked done (+1).
DEPTH_KINDS = "('reflection', 'exercise')"
#: Ledger kinds that count on the leaderboard.
BOARD_KINDS = "('checkin', 'finish', 'adjust')"


def id_values(count: int, *, first: int | None = None) -> str:
    """`VALUES` rows for a list of ids given as parameters (`?`, or `?first`, `?first+1`, … when numbered),
    typed BIGINT so PostgreSQL compares them with the id columns."""
    if first is None:
        return ", ".join("(CAST(? AS BIGINT))" for _ in range(count))
    return ", ".join(f"(CAST(?{i} AS BIGINT))" for i in range(first, first + count))


def row_as(cls: type, row: Row | None) -> Any:
    """A row class from a query's columns in order; None stays None."""
    if row is None:
        return None
    return cls(*row)


class Base:
    """The database calls the aggregate modules use. Never call the single-statement ones inside
    `transaction()`: use the transaction's own `tx`."""

    db: Database
    _shard_sql = ""  # set by only_shards: this process's share of the servers

    def only_shards(self, count: int, ids: Iterable[int]) -> None:
        """From now on, the scheduled work this storage hands out (due schedules, outbox leases, purges, the
        servers it counts as present) is only that of servers on these of `count` shards, the shard of a server
        being Discord's `(guild_id >> 22) % count`."""
        ids = sorted(set(ids))
        self._shard_sql = "" if count <= 1 or len(ids) >= count else (
            f" AND (({{col}} >> 22) % {int(count)}) IN ({', '.join(str(int(i)) for i in ids)})")

    def mine(self, col: str = "guild_id") -> str:
        """An `AND …` keeping the rows whose server `col` is on this process's shards (empty when it has all)."""
        return self._shard_sql.format(col=col)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await self.db.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return await self.db.fetchall(sql, params)

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        return await self.db.execute(sql, params)

    def transaction(self) -> Any:
        return self.db.transaction()
