"""Operator settings, from the environment and an optional `.env` file."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from coach.shards import MAX_SHARDS, Shards, format_shard_ids, parse_shard_ids

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "sqlite:///data/bounce.sqlite3"


class SettingsError(Exception):
    """One clear line naming the setting that is missing or malformed."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    discord_token: SecretStr = Field(min_length=1)
    database_url: str = DEFAULT_DATABASE_URL
    log_level: str = "INFO"
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    dev_guild_id: int | None = None
    grace_hours: float = Field(default=3.0, ge=0, le=48)
    send_budget_per_second: float = Field(default=40.0, ge=0, le=50)  # 0: no local pacing (a proxy paces)
    tick_seconds: float = Field(default=20.0, gt=0, le=30)
    lessons_dir: Path = ROOT / "data" / "lessons"
    prompts_dir: Path = ROOT / "prompts"
    instance_id: str = ""                                   # this process's name on outbox leases
    outbox_lease_seconds: int = Field(default=60, ge=2, le=3600)
    web_port: int | None = Field(default=None, ge=0, le=65535)  # 0: any free port (tests)
    web_host: str = "127.0.0.1"
    web_base_url: str | None = None
    shard_count: int = Field(default=1, ge=1, le=MAX_SHARDS)  # Discord's shards in all, over every process
    shard_ids: str = ""                                     # this process's shards ("0,1", "0-3"); blank: all

    @field_validator("discord_token", mode="before")
    @classmethod
    def _token(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("dev_guild_id", "web_port", "web_base_url", mode="before")
    @classmethod
    def _blank_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return upper

    @field_validator("database_url")
    @classmethod
    def _db(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("use sqlite:///path/to/file.sqlite3 or postgresql://user:password@host:5432/db")
        return value

    @field_validator("discord_api_base", "discord_gateway_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must be a URL starting with http(s):// or ws(s)://")
        return value.rstrip("/")

    @field_validator("web_base_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be the page's public address starting with http:// or https://")
        return value.rstrip("/")

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _shard_ids_text(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return value

    @field_validator("shard_ids")
    @classmethod
    def _shard_ids(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            return ""
        ids = parse_shard_ids(value)
        count = info.data.get("shard_count")
        if count is not None:
            Shards(count, ids)  # ids within 0..count-1
        return format_shard_ids(ids)

    @property
    def shards(self) -> Shards:
        """The shards this process runs: SHARD_IDS of SHARD_COUNT (every shard when SHARD_IDS is blank)."""
        if not self.shard_ids:
            return Shards.all(self.shard_count)
        return Shards(self.shard_count, parse_shard_ids(self.shard_ids))

    @property
    def instance(self) -> str:
        """Who holds this process's outbox leases. A restarted process takes its own leases back at once, so two
        processes sharing one database need different INSTANCE_IDs (the default is the host name)."""
        return self.instance_id or socket.gethostname()

    @property
    def database(self) -> Path | str:
        """What Storage.open takes: the SQLite file's path (relative to the project), or the PostgreSQL URL."""
        if not self.database_url.startswith("sqlite:///"):
            return self.database_url
        path = Path(self.database_url.removeprefix("sqlite:///"))
        return path if path.is_absolute() else ROOT / path

    @property
    def database_label(self) -> str:
        """The database for messages: the file, or the URL without its password."""
        if isinstance(self.database, Path):
            return str(self.database)
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", self.database_url)


def load_settings(**overrides: object) -> Settings:
    """Settings or a SettingsError naming the first bad setting (never the token's value)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err.get("loc") else "settings"
        if err.get("type") == "missing":
            raise SettingsError(f"{name} is not set; put it in the environment or in .env (see .env.example).") from None
        raw = err.get("input")
        if isinstance(raw, str) and not raw.strip():
            raise SettingsError(f"{name} is empty; put its value after `{name}=` in the environment or in .env "
                                "(see .env.example).") from None
        raise SettingsError(f"{name} is malformed: {err.get('msg', 'invalid value')}.") from None
