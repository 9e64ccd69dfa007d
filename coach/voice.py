"""The coach's voice over months: which situation an answer is, and which line is said, with memory.

* Per member and per situation, a line is not said again before every other line of that situation was said
  (a rotation kept in the database, so restarts and several processes share it).
* A server never sees the same check-in prompt within its last :data:`PROMPT_NO_REPEAT_ROUNDS` rounds.
* The valley reply comes once per run of Unfinished answers, from the third one on (Skipped neither adds to
  the run nor ends it; a finish ends it). The first two Skipped answers in a row get short lines without
  advice. After :data:`WELCOME_BACK_AFTER` or more rounds without an answer (away days aside) the next answer
  is welcomed back.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coach.prompts import PROMPT_NO_REPEAT_ROUNDS, Prompts
from coach.storage import Storage
from coach.streaks import milestone_reached

if TYPE_CHECKING:
    from coach.checkins import History

VALLEY_AT = 3  # the valley reply comes with the third Unfinished answer of a run (or the first one after it)
SHORT_SKIPS = 2  # the first two Skipped answers in a row get short lines, without advice
WELCOME_BACK_AFTER = 7  # rounds without an answer (away days aside) before an answer is a welcome back
SERVER = 0  # user_id for what the whole server hears (recap intros, announcements)
VALLEY_KEY = "valley.run"
_SWAP_TRIES = 5


def line_id(line: str) -> str:
    """A short, stable id for a line: editing a line makes it a new one, removing it forgets it."""
    return hashlib.sha1(line.encode("utf-8")).hexdigest()[:10]


def next_in_rotation(used: Sequence[str], ids: Sequence[str], rng: random.Random) -> tuple[int, list[str]]:
    """Pick among the lines not yet used in this rotation. ``used`` lists the ids said so far, oldest first (ids of
    lines no longer shipped are dropped). When all were said a new rotation starts, never with the line said last.
    Returns the chosen index into ``ids`` and the rotation's used ids after it."""
    known = [u for u in used if u in ids]
    fresh = [i for i, lid in enumerate(ids) if lid not in known]
    if not fresh:
        last = known[-1] if known else None
        fresh = [i for i, lid in enumerate(ids) if lid != last] or list(range(len(ids)))
        known = []
    index = rng.choice(fresh)
    return index, [*known, ids[index]]


async def pick_line(storage: Storage, guild_id: int, user_id: int, key: str, lines: Sequence[str],
                    rng: random.Random) -> str:
    """The next line of the rotation ``key`` for (server, member), remembered in the database."""
    ids = [line_id(line) for line in lines]
    index = 0
    for _ in range(_SWAP_TRIES):
        stored = await storage.voice_memory(guild_id, user_id, key)
        index, used = next_in_rotation(stored.split() if stored else [], ids, rng)
        if await storage.swap_voice_memory(guild_id, user_id, key, stored, " ".join(used)):
            break
    return lines[index]  # after repeated contention the line is said anyway: a rare repeat beats no reply


async def say(storage: Storage, prompts: Prompts, rng: random.Random, situation: str, *, guild_id: int,
              user_id: int, **values: Any) -> str:
    """The coach's line for ``situation``, filled in with ``values`` (see :meth:`Prompts.fill`), rotating per
    (server, member). Use ``user_id=SERVER`` for what the whole channel hears."""
    project = values.get("project")
    key, lines = prompts.pool(situation, has_project=project is not None and bool(str(project).strip()))
    return prompts.fill(await pick_line(storage, guild_id, user_id, key, lines, rng), **values)


async def choose_dm_text(storage: Storage, prompts: Prompts, guild_id: int, user_id: int, rng: random.Random, *,
                         server: str) -> str:
    """The coach's question for a member's DM round from ``server`` (already made safe), rotating per member."""
    return await say(storage, prompts, rng, "dm_round", guild_id=guild_id, user_id=user_id, server=server)


def prompt_window(count: int) -> int:
    """How many of the server's latest rounds a new prompt must differ from: at least
    :data:`PROMPT_NO_REPEAT_ROUNDS`, and three quarters of the prompts when there are more, leaving a choice."""
    return max(0, min(count - 1, max(PROMPT_NO_REPEAT_ROUNDS, count * 3 // 4)))


async def choose_prompt(storage: Storage, prompts: Prompts, guild_id: int, rng: random.Random) -> int:
    """Index of the check-in prompt for the server's next round: not one of its latest rounds' prompts."""
    recent = await storage.recent_prompt_indices(guild_id, prompt_window(len(prompts.checkin)))
    return prompts.checkin_prompt(list(reversed(recent)), rng)


# ---------------------------------------------------------------- which situation an answer is


def _missed_dates(history: History) -> list[str]:
    """Rounds the member left unanswered, away days aside, oldest first."""
    return sorted(d for d in history.dates
                  if d not in history.answers and not any(start <= d <= end for start, end in history.away))


def _missed_between(missed: list[str], after: str, before: str) -> int:
    return bisect.bisect_left(missed, before) - bisect.bisect_right(missed, after)


def missed_before(history: History, local_date: str) -> int:
    """Rounds without an answer (away days aside) between the member's previous answer and ``local_date``."""
    earlier = [d for d in history.answers if d < local_date]
    return _missed_between(_missed_dates(history), max(earlier) if earlier else "", local_date)


def current_run(history: History, local_date: str) -> list[tuple[str, str]]:
    """The member's answers since the last Finished, up to and including ``local_date``, newest first, as
    (date, status). A long absence (a welcome back) also starts a new run."""
    missed = _missed_dates(history)
    answered = sorted(d for d in history.answers if d <= local_date)
    run: list[tuple[str, str]] = []
    for i in range(len(answered) - 1, -1, -1):
        d = answered[i]
        status = history.answers[d]
        if status == "finished":
            break
        run.append((d, status))
        if _missed_between(missed, answered[i - 1] if i else "", d) >= WELCOME_BACK_AFTER:
            break
    return run


async def situation_for(storage: Storage, history: History, *, guild_id: int, user_id: int, local_date: str,
                        created: bool, first_ever: bool, status: str, before: int, after: int) -> str:
    """Which replies.toml situation answers this check-in. ``history`` already holds the answer; ``before`` and
    ``after`` are the streak without and with it. May remember that the valley was said for this run."""
    if not created:
        return "edited"
    if first_ever:
        return "first_checkin"
    if missed_before(history, local_date) >= WELCOME_BACK_AFTER:
        return "welcome_back"
    milestone = milestone_reached(before, after)
    if milestone:
        return f"streak_{milestone}"
    run = current_run(history, local_date)
    if status == "unfinished" and sum(1 for _, s in run if s == "unfinished") >= VALLEY_AT:
        run_id = run[-1][0]  # the run's first answer names it
        stored = await storage.voice_memory(guild_id, user_id, VALLEY_KEY)
        if stored != run_id and await storage.swap_voice_memory(guild_id, user_id, VALLEY_KEY, stored, run_id):
            return "valley"
    if status == "skipped":
        skips = 0
        for _, s in run:
            if s != "skipped":
                break
            skips += 1
        return "skipped" if skips <= SHORT_SKIPS else "skipped_run"
    return status
