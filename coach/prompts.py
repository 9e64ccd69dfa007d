"""The coach's words: load and validate ``prompts/*.toml``, pick and fill in lines.

Two files live in the prompts directory:

``checkin.toml``
    ``prompts = [...]``: the daily Accountability Check questions (only ``{server}`` allowed).
``replies.toml``
    one table per situation in :data:`SITUATIONS`, each with ``lines = [...]`` and, where
    ``lines`` mention ``{project}``, ``lines_no_project = [...]`` used when no project is given.

Everything is checked once, at start (:func:`load_prompts`), so a typo in a placeholder stops
the bot with a message naming the file and key instead of breaking a reply in production.
"""

from __future__ import annotations

import logging
import random
import string
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Where the shipped words live (``<repo>/prompts``).
DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "prompts"

CHECKIN_FILE = "checkin.toml"
REPLIES_FILE = "replies.toml"

#: Every situation the coach can reply to; each must be a table in ``replies.toml``.
SITUATIONS: tuple[str, ...] = (
    "first_checkin",
    "finished",
    "unfinished",
    "skipped",
    "skipped_run",
    "valley",
    "welcome_back",
    "streak_3",
    "streak_7",
    "streak_30",
    "streak_100",
    "edited",
    "project_started",
    "project_finished_announce",
    "project_finished_reply",
    "project_dropped",
    "lesson_reflected",
    "lesson_apply",
    "recap_intro",
    "dm_round",
    "nudge",
    "nudge_pause",
)

#: The only names a line may use inside braces.
PLACEHOLDERS: frozenset[str] = frozenset({"member", "project", "streak", "server"})
#: Check-in prompts are posted to the whole channel: only the server's name makes sense there.
CHECKIN_PLACEHOLDERS: frozenset[str] = frozenset({"server"})
#: Placeholders a situation's every line must use (the DM must say which server it is from).
REQUIRED_PLACEHOLDERS: Mapping[str, frozenset[str]] = {"dm_round": frozenset({"server"})}

#: A server never sees the same prompt twice within this many rounds (coach/voice.py), so at least one more
#: prompt than that must exist.
PROMPT_NO_REPEAT_ROUNDS = 30
MIN_CHECKIN_PROMPTS = PROMPT_NO_REPEAT_ROUNDS + 1
MAX_CHECKIN_CHARS = 300
MIN_LINES = 6
MIN_NO_PROJECT_LINES = 3
MAX_REPLY_CHARS = 400

_LINES = "lines"
_NO_PROJECT = "lines_no_project"

_formatter = string.Formatter()


class PromptError(Exception):
    """A prompts file is missing, malformed or breaks a rule.

    The message names the file and key, e.g.
    ``prompts/replies.toml [valley] line 3: unknown placeholder {mood}``.
    """


def placeholders(text: str) -> frozenset[str]:
    """The placeholder names used in ``text``.

    Raises ``ValueError`` for a stray brace, a positional ``{}``, or anything fancier than a
    plain ``{name}`` (attribute or index access, conversions, format specs).
    """
    names: set[str] = set()
    for _literal, field, spec, conversion in _formatter.parse(text):
        if field is None:
            continue
        shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not field.isidentifier():
            raise ValueError(f"placeholder {shown} must be a plain name such as {{member}}")
        if conversion or spec:
            raise ValueError(f"placeholder {shown} must be plain, without ! or :")
        names.add(field)
    return frozenset(names)


class _Values(dict[str, Any]):
    """format_map mapping: a placeholder without a value renders as empty text."""

    def __missing__(self, key: str) -> str:
        log.warning("prompt placeholder {%s} had no value; rendered empty", key)
        return ""


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(frozen=True)
class Prompts:
    """The loaded, validated words. Build it with :func:`load_prompts`."""

    checkin: tuple[str, ...]
    replies: dict[str, tuple[str, ...]]
    replies_no_project: dict[str, tuple[str, ...]]

    def checkin_prompt(self, recent: Sequence[int], rng: random.Random) -> int:
        """Index into :attr:`checkin` of a prompt that is not among ``recent``.

        ``recent`` holds the indices used lately, oldest first. Indices out of range (the file
        changed) are ignored. If every prompt is recent, the oldest entries stop counting
        until a choice remains, so the most recently used prompts are still avoided.
        """
        count = len(self.checkin)
        if count == 0:
            raise PromptError("no check-in prompts loaded")
        window = [i for i in recent if isinstance(i, int) and 0 <= i < count]
        for start in range(len(window) + 1):
            avoid = set(window[start:])
            candidates = [i for i in range(count) if i not in avoid]
            if candidates:
                return rng.choice(candidates)
        return rng.randrange(count)  # pragma: no cover - the empty window always leaves a choice

    def checkin_text(self, index: int, *, server: str) -> str:
        """The check-in prompt at ``index``, with ``{server}`` filled in."""
        return self.checkin[index % len(self.checkin)].format_map(_Values(server=server))

    def pool(self, situation: str, *, has_project: bool) -> tuple[str, tuple[str, ...]]:
        """The lines ``situation`` chooses from, and the name of that list for rotations: ``situation`` itself,
        or ``situation + ".np"`` for the ``lines_no_project`` used when no project is given (or, if a situation
        has none, the lines that don't mention the project)."""
        try:
            lines = self.replies[situation]
        except KeyError:
            raise KeyError(f"unknown situation {situation!r}") from None
        if has_project:
            return situation, lines
        no_project = self.replies_no_project.get(situation)
        if no_project:
            return f"{situation}.np", no_project
        return situation, tuple(line for line in lines if "project" not in placeholders(line)) or lines

    def fill(self, line: str, **values: Any) -> str:
        """``line`` with ``values`` filled in. ``values`` may only name :data:`PLACEHOLDERS`; a missing one
        renders as empty text. Values are inserted as they are: the caller makes member-written text safe first."""
        unknown = set(values) - PLACEHOLDERS
        if unknown:
            raise TypeError(f"unknown placeholder value(s): {', '.join(sorted(unknown))}")
        return line.format_map(_Values({k: ("" if v is None else v) for k, v in values.items()}))

    def reply(self, situation: str, rng: random.Random, **values: Any) -> str:
        """A variant for ``situation`` chosen at random, without memory, filled in with ``values``.

        The bot itself goes through :mod:`coach.voice`, which remembers what each member was told.
        When ``project`` is empty or None the ``lines_no_project`` variants are used (see :meth:`pool`).
        """
        _key, lines = self.pool(situation, has_project=not _is_blank(values.get("project")))
        unknown = set(values) - PLACEHOLDERS
        if unknown:
            raise TypeError(f"unknown placeholder value(s): {', '.join(sorted(unknown))}")
        return self.fill(rng.choice(lines), **values)


def load_prompts(directory: Path = DEFAULT_DIRECTORY) -> Prompts:
    """Read and check ``checkin.toml`` and ``replies.toml`` in ``directory``.

    Raises :class:`PromptError`, naming the file and key, for a missing or malformed file, a
    missing or unknown situation, too few lines, a line that is too long, empty or repeated,
    and an unknown or malformed placeholder.
    """
    directory = Path(directory)
    checkin = _load_checkin(directory / CHECKIN_FILE)
    replies, replies_no_project = _load_replies(directory / REPLIES_FILE)
    return Prompts(checkin=checkin, replies=replies, replies_no_project=replies_no_project)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise PromptError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise PromptError(f"{path}: malformed TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise PromptError(f"{path}: not valid UTF-8: {exc}") from None
    except OSError as exc:
        raise PromptError(f"{path}: cannot read: {exc}") from None


def _load_checkin(path: Path) -> tuple[str, ...]:
    data = _read_toml(path)
    extra = sorted(set(data) - {"prompts"})
    if extra:
        raise PromptError(f"{path} [{extra[0]}]: unknown key; only 'prompts' belongs in this file")
    if "prompts" not in data:
        raise PromptError(f"{path} [prompts]: missing; expected prompts = [ ... ]")
    prompts = _check_lines(
        path,
        "[prompts]",
        data["prompts"],
        allowed=CHECKIN_PLACEHOLDERS,
        max_chars=MAX_CHECKIN_CHARS,
    )
    if len(prompts) < MIN_CHECKIN_PROMPTS:
        raise PromptError(
            f"{path} [prompts]: {len(prompts)} prompts, at least {MIN_CHECKIN_PROMPTS} are needed"
        )
    return prompts


def _load_replies(path: Path) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    data = _read_toml(path)
    unknown = sorted(set(data) - set(SITUATIONS))
    if unknown:
        raise PromptError(f"{path} [{unknown[0]}]: unknown situation; known ones are {', '.join(SITUATIONS)}")
    replies: dict[str, tuple[str, ...]] = {}
    replies_no_project: dict[str, tuple[str, ...]] = {}
    for situation in SITUATIONS:
        if situation not in data:
            raise PromptError(f"{path} [{situation}]: missing situation")
        table = data[situation]
        if not isinstance(table, dict):
            raise PromptError(f"{path} [{situation}]: must be a table with lines = [ ... ]")
        extra = sorted(set(table) - {_LINES, _NO_PROJECT})
        if extra:
            raise PromptError(f"{path} [{situation}] {extra[0]}: unknown key; use {_LINES} or {_NO_PROJECT}")
        if _LINES not in table:
            raise PromptError(f"{path} [{situation}]: missing {_LINES} = [ ... ]")
        lines = _check_lines(
            path,
            f"[{situation}]",
            table[_LINES],
            allowed=PLACEHOLDERS,
            max_chars=MAX_REPLY_CHARS,
            required=REQUIRED_PLACEHOLDERS.get(situation, frozenset()),
        )
        if len(lines) < MIN_LINES:
            raise PromptError(f"{path} [{situation}]: {len(lines)} lines, at least {MIN_LINES} are needed")
        replies[situation] = lines

        uses_project = any("project" in placeholders(line) for line in lines)
        if _NO_PROJECT in table:
            no_project = _check_lines(
                path,
                f"[{situation}] {_NO_PROJECT}",
                table[_NO_PROJECT],
                allowed=PLACEHOLDERS - {"project"},
                max_chars=MAX_REPLY_CHARS,
                required=REQUIRED_PLACEHOLDERS.get(situation, frozenset()),
            )
            if len(no_project) < MIN_NO_PROJECT_LINES:
                raise PromptError(
                    f"{path} [{situation}] {_NO_PROJECT}: {len(no_project)} lines, "
                    f"at least {MIN_NO_PROJECT_LINES} are needed"
                )
            replies_no_project[situation] = no_project
        elif uses_project:
            raise PromptError(
                f"{path} [{situation}]: lines use {{project}}, so {_NO_PROJECT} "
                f"(at least {MIN_NO_PROJECT_LINES}) is needed for when no project is given"
            )
    return replies, replies_no_project


def _check_lines(
    path: Path,
    key: str,
    value: object,
    *,
    allowed: frozenset[str],
    max_chars: int,
    required: Iterable[str] = (),
) -> tuple[str, ...]:
    """Validate one list of lines; ``key`` is how the list is named in messages."""
    if not isinstance(value, list):
        raise PromptError(f"{path} {key}: must be a list of strings")
    seen: set[str] = set()
    for number, line in enumerate(value, start=1):
        where = f"{path} {key} line {number}"
        if not isinstance(line, str):
            raise PromptError(f"{where}: must be a string, not {type(line).__name__}")
        if not line.strip():
            raise PromptError(f"{where}: empty")
        if len(line) > max_chars:
            raise PromptError(f"{where}: {len(line)} characters, at most {max_chars} allowed")
        if line in seen:
            raise PromptError(f"{where}: repeats an earlier line")
        seen.add(line)
        try:
            names = placeholders(line)
        except ValueError as exc:
            raise PromptError(f"{where}: {exc} (write a literal brace as {{{{ or }}}})") from None
        for name in sorted(names):
            if name not in allowed:
                if name in PLACEHOLDERS:
                    raise PromptError(f"{where}: placeholder {{{name}}} is not available here")
                raise PromptError(f"{where}: unknown placeholder {{{name}}}")
        for name in sorted(required):
            if name not in names:
                raise PromptError(f"{where}: must use {{{name}}}")
    return tuple(value)
