"""Privacy: public names, export, forget, and the purge of servers that removed the bot."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from coach.clock import to_unix
from coach.storage.base import Base, id_values
from coach.storage.rows import ExportRow, FinishedProject, PublicFinished

log = logging.getLogger(__name__)


class Privacy(Base):
    _PURGE_CHUNK = 5000  # rows a purge deletes per transaction
    # ------------------------------------------------------------ public names (announce off holds everywhere)
    # Every public surface (celebration, weekly recap, the server page) names members only through
    # may_name_publicly(members.announce): on SQLite the Python rule of coach.members registered by the database
    # layer, on PostgreSQL the same rule as an SQL function of the baseline schema.

    async def public_finished_projects(self, guild_id: int, start: int, end: int,
                                       limit: int = 50) -> PublicFinished:
        """Projects finished in [start, end) (UTC unix seconds): all counted, only the nameable ones listed."""
        where = "p.guild_id = ? AND p.status = 'finished' AND p.closed_at >= ? AND p.closed_at < ?"
        rows = await self.fetchall(
            f"""SELECT p.user_id, m.display_name, p.name, p.closed_at FROM projects p
               LEFT JOIN members m ON m.guild_id = p.guild_id AND m.user_id = p.user_id
               WHERE {where} AND may_name_publicly(m.announce) = 1
               ORDER BY p.closed_at, p.id LIMIT ?""",
            (guild_id, start, end, limit),
        )
        total = await self.fetchone(f"SELECT COUNT(*) FROM projects p WHERE {where}", (guild_id, start, end))
        return PublicFinished([FinishedProject(*r) for r in rows], total[0])

    async def nameable_members(self, guild_id: int, user_ids: Iterable[int], *, on_page: bool = False) -> set[int]:
        """Those of `user_ids` who may be named publicly in this server (members never stored: the default);
        with `on_page`, also not off the server's page (/me public off)."""
        ids = sorted(set(user_ids))
        if not ids:
            return set()
        values = id_values(len(ids))
        page = " AND COALESCE(m.public, 1) = 1" if on_page else ""
        rows = await self.fetchall(
            f"""WITH cand(uid) AS (VALUES {values})
               SELECT uid FROM cand LEFT JOIN members m ON m.guild_id = ? AND m.user_id = cand.uid
               WHERE may_name_publicly(m.announce) = 1{page}""",
            (*ids, guild_id),
        )
        return {r[0] for r in rows}

    # ------------------------------------------------------------ board: export

    async def export_checkins(self, guild_id: int, after: tuple[str, int] | None, limit: int) -> list[ExportRow]:
        """One batch of the server's check-ins in (date, id) order, after the (date, id) key given."""
        date_key, id_key = after or ("", 0)
        rows = await self.fetchall(
            """SELECT c.id, c.local_date, c.user_id, m.display_name, c.status, p.name, c.note
               FROM checkins c
               LEFT JOIN members m ON m.guild_id = c.guild_id AND m.user_id = c.user_id
               LEFT JOIN projects p ON p.id = c.project_id
               WHERE c.guild_id = ? AND (c.local_date, c.id) > (?, ?)
               ORDER BY c.local_date, c.id LIMIT ?""",
            (guild_id, date_key, id_key, limit),
        )
        return [ExportRow(*r) for r in rows]

    async def _tables_with(self, *columns: str) -> list[str]:
        """Tables that have all of `columns`, from the live schema (features add tables in migrations)."""
        found = []
        for name in await self.db.tables():
            if set(columns) <= set(await self.db.columns(name)):
                found.append(name)
        return found

    @staticmethod
    def _deletion_order(tables: Iterable[str]) -> list[str]:
        """Totals before the ledger (its delete trigger then has nothing to update); check-ins before the
        projects and rounds they point at; settings last."""
        first = ["board_totals", "checkin_days", "points", "checkins", "projects", "rounds"]
        last = ["members", "guild_settings", "guild_removals"]
        names = list(tables)
        return ([t for t in first if t in names] + sorted(t for t in names if t not in first and t not in last)
                + [t for t in last if t in names])

    async def _chunkable_tables(self) -> set[str]:
        """Tables whose rows can be named by the dialect's row locator (on SQLite: not WITHOUT ROWID)."""
        if self.db.dialect != "sqlite":
            return set(await self.db.tables())
        rows = await self.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND upper(sql) NOT LIKE '%WITHOUT ROWID%'")
        return {r[0] for r in rows}

    async def member_data(self, guild_id: int, user_id: int) -> dict[str, list[dict[str, Any]]]:
        """Everything stored about one member in one server, by table (for /me export)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for table in await self._tables_with("guild_id", "user_id"):
            if table in ("board_totals", "board_confirms", "role_dirty"):
                continue
            names = await self.db.columns(table)
            listed = ", ".join(f'"{n}"' for n in names)
            rows = await self.fetchall(f'SELECT {listed} FROM "{table}" WHERE guild_id = ? AND user_id = ?',
                                       (guild_id, user_id))
            out[table] = [dict(zip(names, r, strict=True)) for r in rows]
        return out

    async def forget_member(self, guild_id: int, user_id: int) -> dict[str, int]:
        """Delete one member's rows in one server, in one transaction; the counts deleted, by table."""
        tables = self._deletion_order(await self._tables_with("guild_id", "user_id"))
        counts: dict[str, int] = {}
        async with self.transaction() as db:
            for table in tables:
                async with db.execute(f'DELETE FROM "{table}" WHERE guild_id = ? AND user_id = ?',
                                      (guild_id, user_id)) as cur:
                    counts[table] = cur.rowcount
        return counts

    # ------------------------------------------------------------ board: servers that removed the bot

    async def mark_removed(self, guild_id: int, now: datetime) -> None:
        ts = to_unix(now)
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO guild_removals (guild_id, removed_at) VALUES (?, ?) ON CONFLICT (guild_id) DO NOTHING",
                (guild_id, ts),
            )
            await db.execute("UPDATE guild_settings SET removed_at = ? WHERE guild_id = ?", (ts, guild_id))

    async def mark_returned(self, guild_id: int) -> bool:
        """The bot is back in the server: nothing will be purged. True when it had been marked removed.
        (Called for every server at start: one cheap statement when there is nothing to clear.)"""
        if await self.fetchone("DELETE FROM guild_removals WHERE guild_id = ? RETURNING guild_id",
                               (guild_id,)) is None:
            return False
        await self.execute("UPDATE guild_settings SET removed_at = NULL WHERE guild_id = ?", (guild_id,))
        return True

    async def present_guild_ids(self) -> set[int]:
        """Servers with a check-in set up and not marked removed."""
        return {r[0] for r in await self.fetchall(
            f"SELECT guild_id FROM guild_settings WHERE removed_at IS NULL{self.mine()}")}

    async def removed_at(self, guild_id: int) -> int | None:
        row = await self.fetchone("SELECT removed_at FROM guild_removals WHERE guild_id = ?", (guild_id,))
        return row[0] if row else None

    async def due_purges(self, removed_before: int, limit: int) -> list[int]:
        rows = await self.fetchall(
            f"SELECT guild_id FROM guild_removals WHERE removed_at <= ?{self.mine()} ORDER BY removed_at LIMIT ?",
            (removed_before, limit),
        )
        return [r[0] for r in rows]

    async def purge_guild(self, guild_id: int, removed_before: int) -> dict[str, int] | None:
        """Delete everything stored for a server, if it is still marked removed since before `removed_before`.

        Large tables go in chunks (one short transaction each) so other servers are not held up; the
        removal mark goes last, so a purge cut short is finished by the next run. None when not due
        (the bot was added back meanwhile).
        """
        if await self.fetchone("SELECT 1 FROM guild_removals WHERE guild_id = ? AND removed_at <= ?",
                               (guild_id, removed_before)) is None:
            return None
        tables = self._deletion_order(await self._tables_with("guild_id"))
        chunked = await self._chunkable_tables()
        counts: dict[str, int] = {}
        for table in tables:
            if table == "guild_removals":
                continue
            total = 0
            while True:
                async with self.transaction() as db:
                    # Re-check in every chunk: an add-back (on_guild_join) stops the purge.
                    async with db.execute("SELECT 1 FROM guild_removals WHERE guild_id = ? AND removed_at <= ?",
                                          (guild_id, removed_before)) as cur:
                        if await cur.fetchone() is None:
                            return None
                    if table in chunked:
                        row = self.db.row_locator
                        sql = (f'DELETE FROM "{table}" WHERE {row} IN (SELECT {row} FROM "{table}" '
                               f"WHERE guild_id = ? LIMIT {self._PURGE_CHUNK})")
                    else:
                        sql = f'DELETE FROM "{table}" WHERE guild_id = ?'
                    async with db.execute(sql, (guild_id,)) as cur:
                        changed = cur.rowcount
                total += changed
                if table not in chunked or changed < self._PURGE_CHUNK:
                    break
            counts[table] = total
        await self.execute("DELETE FROM guild_removals WHERE guild_id = ? AND removed_at <= ?",
                           (guild_id, removed_before))
        return counts
