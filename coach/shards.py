"""Which servers this process serves: Discord's shard arithmetic, with no discord import.

Discord splits a bot's servers into `count` shards by `(guild_id >> 22) % count` (the snowflake's timestamp part)
and sends each shard's events on its own gateway connection; DMs arrive on shard 0. A process runs some of the
shards (`ids`) and takes only their servers' scheduled work, so processes sharing one database never post the
same round twice. Discord's global request limit is per bot, so each process paces at its share of the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SHARDS = 4096  # far beyond any bot Bounce will run; keeps a typo such as 10000000 from allocating ranges


def shard_of(guild_id: int, count: int) -> int:
    """The shard that carries a server's events (Discord's formula)."""
    if count < 1:
        raise ValueError("shard count must be at least 1")
    return (guild_id >> 22) % count


@dataclass(frozen=True)
class Shards:
    """The shards this process runs, out of `count`. `ids` is sorted and has no duplicates."""

    count: int = 1
    ids: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"the shard count must be between 1 and {MAX_SHARDS}, not {self.count}")
        if not self.ids:
            raise ValueError("name at least one shard id")
        outside = [i for i in self.ids if not 0 <= i < self.count]
        if outside:
            raise ValueError(f"shard {outside[0]} is outside 0-{self.count - 1} (there are {self.count} shards)")
        if len(set(self.ids)) != len(self.ids):
            dup = next(i for i in self.ids if self.ids.count(i) > 1)
            raise ValueError(f"shard {dup} is named twice")
        object.__setattr__(self, "ids", tuple(sorted(self.ids)))

    @classmethod
    def all(cls, count: int = 1) -> Shards:
        """Every shard of `count` in one process."""
        return cls(count, tuple(range(count)))

    @property
    def every_shard(self) -> bool:
        """This process runs all the shards (the single-process case)."""
        return len(self.ids) == self.count

    def owns(self, guild_id: int | None) -> bool:
        """This process serves the server; `None` (a DM) belongs to shard 0, where Discord sends DMs."""
        if self.every_shard:
            return True
        return (0 if guild_id is None else shard_of(guild_id, self.count)) in self.ids

    def share(self, budget: float) -> float:
        """This process's part of a per-bot budget (requests per second): budget × its shards ÷ all shards.
        0 (no local pacing) stays 0."""
        return budget * len(self.ids) / self.count

    def describe(self) -> str:
        """'shards 0-1 of 4', 'shard 3 of 4', 'one shard' for log lines."""
        if self.count == 1:
            return "one shard"
        word = "shard" if len(self.ids) == 1 else "shards"
        return f"{word} {format_shard_ids(self.ids)} of {self.count}"


def parse_shard_ids(text: str) -> tuple[int, ...]:
    """'0,1' | '0-3' | '0-1,3' → sorted ids. Raises ValueError saying what is wrong (bounds are checked by
    `Shards`, which knows the count)."""
    ids: list[int] = []
    parts = [p.strip() for p in text.split(",")]
    if not text.strip():
        raise ValueError("name at least one shard id, e.g. 0 or 0-3 or 0,2")
    for part in parts:
        if not part:
            raise ValueError(f"{text!r} has an empty item between commas")
        lo_text, dash, hi_text = part.partition("-")
        try:
            lo = int(lo_text.strip())
            hi = int(hi_text.strip()) if dash else lo
        except ValueError:
            raise ValueError(f"{part!r} is not a shard id or a range such as 0-3") from None
        if lo < 0 or hi < 0:
            raise ValueError(f"{part!r}: shard ids start at 0")
        if hi < lo:
            raise ValueError(f"{part!r} runs backwards; write {hi}-{lo}")
        if hi - lo >= MAX_SHARDS:
            raise ValueError(f"{part!r} names more than {MAX_SHARDS} shards")
        ids.extend(range(lo, hi + 1))
    seen: set[int] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"shard {i} is named twice in {text!r}")
        seen.add(i)
    return tuple(sorted(ids))


def format_shard_ids(ids: tuple[int, ...] | list[int]) -> str:
    """The inverse of `parse_shard_ids`: (0, 1, 2, 5) → '0-2,5'."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(ids):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)
