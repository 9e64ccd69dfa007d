"""All SQL lives in this package: a database layer (`db`: SQLite or PostgreSQL, transactions, migrations, the
dialect) and one module per aggregate. `Storage` is their sum; callers never see a driver."""

from __future__ import annotations

from pathlib import Path

from coach.storage.db import (
    MIGRATIONS_DIR,
    PG_MIGRATIONS_DIR,
    Database,
    DatabaseTooNew,
    StorageError,
    is_postgres_url,
    migrations,
    open_database,
)
from coach.storage.dms import DMs
from coach.storage.ledger import Ledger
from coach.storage.lessons import Lessons
from coach.storage.members import Members
from coach.storage.outbox import OutboxStore
from coach.storage.privacy import Privacy
from coach.storage.projects import Projects
from coach.storage.rewards import Rewards
from coach.storage.rows import *  # noqa: F403  (every row class, importable from coach.storage)
from coach.storage.rows import __all__ as _rows
from coach.storage.schedules import Schedules
from coach.storage.web import WebPages

__all__ = ["MIGRATIONS_DIR", "PG_MIGRATIONS_DIR", "DatabaseTooNew", "Storage", "StorageError", "is_postgres_url",
           "migrations", *_rows]


class Storage(Schedules, OutboxStore, Members, DMs, Projects, Ledger, Rewards, Lessons, Privacy, WebPages):
    """The bot's storage: every aggregate's calls on one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    async def open(cls, target: Path | str, *, migrations_dir: Path | None = None) -> Storage:
        """Open and migrate a SQLite file (a path, `sqlite:///path`, `:memory:`) or a PostgreSQL database
        (`postgresql://user:password@host:5432/db`)."""
        return cls(await open_database(target, migrations_dir))

    @property
    def dialect(self) -> str:
        return self.db.dialect

    async def close(self) -> None:
        await self.db.close()

    async def schema_version(self) -> int:
        return await self.db.schema_version()

    async def ping(self) -> None:
        """Raise unless the database answers (and, for SQLite, the file it was opened from is still in place)."""
        await self.db.ping()
