"""Lessons: Markdown files with a small front matter, loaded and checked once at start.

A lesson file lives at ``data/lessons/<track>/NN-slug.md``::

    ---
    id: core-01-ambition
    track: core
    order: 1
    title: Ambition Needs a Spine
    tags: [accountability]
    ---
    The excerpt: Markdown that is posted as the embed description.

    ## Your Turn
    A short exercise (posted as an embed field).

    ## Reflect
    One question (the Reflect button's modal asks it).

The front matter is parsed here (``key: value`` lines and ``tags: [a, b]``), with no YAML
dependency. Every problem raises :class:`LessonError` naming the file and the problem, so a
broken lesson stops the bot at start instead of failing in front of a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from coach.text import cut

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LESSONS_DIR = REPO_ROOT / "data" / "lessons"
DEFAULT_TRACK = "core"

# Discord's embed limits. The excerpt is the description, Your Turn and Reflect are fields.
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELD_VALUE_MAX = 1024
EMBED_TOTAL_MAX = 6000
# A modal's text input label.
MODAL_LABEL_MAX = 45
# The Reflect question is shown in full in the post; keep it a question, not an essay.
REFLECT_MAX = 300
# Ids travel in custom_ids (limit 100) and autocomplete values (limit 100), with a prefix.
LESSON_ID_MAX = 64

YOUR_TURN = "Your Turn"
REFLECT = "Reflect"
SECTIONS = (YOUR_TURN, REFLECT)
REQUIRED_FIELDS = ("id", "track", "order", "title")
KNOWN_FIELDS = (*REQUIRED_FIELDS, "tags")
ELLIPSIS = "…"

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_WORD_RE = re.compile(r"[^\W_]+(?:['’_-][^\W_]+)*")
_FENCE_RE = re.compile(r"^\s*(```|~~~)")


class LessonError(Exception):
    """A lesson file (or the lesson directory) is broken; the message names the file and the problem."""


def word_count(text: str) -> int:
    """Words in Markdown text: runs of letters/digits (``don't``, ``16-bar``, ``IDEAS_v3`` are one word each).

    Markdown punctuation (``**``, ``-`` bullets, backticks) is not counted.
    """
    return len(_WORD_RE.findall(text))


@dataclass(frozen=True)
class Lesson:
    id: str
    track: str
    order: int
    title: str
    tags: tuple[str, ...]
    excerpt: str
    your_turn: str
    reflect: str
    path: Path

    @property
    def reflect_label(self) -> str:
        """The Reflect question cut to fit a modal label (45 characters, "…" when cut)."""
        return cut(self.reflect, MODAL_LABEL_MAX)

    @property
    def embed_length(self) -> int:
        """Characters this lesson takes in one embed: title, description and both fields."""
        return (
            len(self.title)
            + len(self.excerpt)
            + len(YOUR_TURN)
            + len(self.your_turn)
            + len(REFLECT)
            + len(self.reflect)
        )


@dataclass(frozen=True)
class LessonLibrary:
    lessons: tuple[Lesson, ...]
    _by_id: dict[str, Lesson] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.lessons, key=lambda lesson: (lesson.track, lesson.order)))
        object.__setattr__(self, "lessons", ordered)
        object.__setattr__(self, "_by_id", {lesson.id: lesson for lesson in ordered})

    def __len__(self) -> int:
        return len(self.lessons)

    @property
    def tracks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(lesson.track for lesson in self.lessons))

    def get(self, lesson_id: str) -> Lesson | None:
        return self._by_id.get(lesson_id.strip())

    def track(self, name: str = DEFAULT_TRACK) -> tuple[Lesson, ...]:
        return tuple(lesson for lesson in self.lessons if lesson.track == name)

    def next_after(self, lesson_id: str | None, track: str = DEFAULT_TRACK) -> Lesson:
        """The lesson after ``lesson_id`` in ``track``, wrapping to the first after the last.

        ``None``, or an id that is not (or no longer) in the track, gives the track's first lesson.
        """
        lessons = self.track(track)
        if not lessons:
            raise LessonError(f"no lessons in track '{track}'")
        for index, lesson in enumerate(lessons):
            if lesson.id == lesson_id:
                return lessons[(index + 1) % len(lessons)]
        return lessons[0]

    def search(self, text: str, limit: int = 25) -> list[Lesson]:
        """Lessons whose id or title contains ``text`` (case-insensitive), in library order.

        Empty text matches everything; at most ``limit`` results (Discord shows 25 choices).
        """
        needle = text.strip().casefold()
        found: list[Lesson] = []
        for lesson in self.lessons:
            if len(found) >= limit:
                break
            if needle in lesson.id.casefold() or needle in lesson.title.casefold():
                found.append(lesson)
        return found


def load_lessons(directory: Path = DEFAULT_LESSONS_DIR) -> LessonLibrary:
    """Load and check every ``*.md`` file under ``directory`` (one level of track folders or flat)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise LessonError(f"{_show(directory)}: lesson directory not found")
    paths = sorted(path for path in directory.rglob("*.md") if path.is_file())
    if not paths:
        raise LessonError(f"{_show(directory)}: no lesson files (*.md) found")

    lessons = [parse_lesson(path) for path in paths]

    by_id: dict[str, Lesson] = {}
    by_slot: dict[tuple[str, int], Lesson] = {}
    for lesson in lessons:
        other = by_id.get(lesson.id)
        if other is not None:
            raise LessonError(
                f"{_show(lesson.path)}: duplicate id '{lesson.id}' (also in {_show(other.path)})"
            )
        by_id[lesson.id] = lesson
        slot = (lesson.track, lesson.order)
        other = by_slot.get(slot)
        if other is not None:
            raise LessonError(
                f"{_show(lesson.path)}: duplicate order {lesson.order} in track '{lesson.track}'"
                f" (also in {_show(other.path)})"
            )
        by_slot[slot] = lesson
    return LessonLibrary(tuple(lessons))


def parse_lesson(path: Path) -> Lesson:
    """Read one lesson file; raise :class:`LessonError` naming the file on any problem."""
    name = _show(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LessonError(f"{name}: cannot read file ({exc})") from exc
    try:
        return _parse(text, path)
    except _Problem as problem:
        raise LessonError(f"{name}: {problem}") from None


class _Problem(Exception):
    """A problem in a file, before the file name is added."""


def _parse(text: str, path: Path) -> Lesson:
    meta, body = _split_front_matter(text)
    for key in REQUIRED_FIELDS:
        if not meta.get(key):
            raise _Problem(f"missing field '{key}'")

    lesson_id = meta["id"]
    if not _ID_RE.match(lesson_id) or len(lesson_id) > LESSON_ID_MAX:
        raise _Problem(
            f"id '{lesson_id}' must be lowercase letters, digits, '-' or '_', at most {LESSON_ID_MAX} characters"
        )
    try:
        order = int(meta["order"])
    except ValueError:
        raise _Problem(f"order '{meta['order']}' is not an integer") from None
    if order < 1:
        raise _Problem(f"order {order} must be 1 or more")
    title = meta["title"]
    if len(title) > EMBED_TITLE_MAX:
        raise _Problem(f"title is {len(title)} characters, over the embed title limit of {EMBED_TITLE_MAX}")
    tags = _parse_tags(meta.get("tags", ""))

    excerpt, sections = _split_sections(body)
    if not excerpt:
        raise _Problem("empty excerpt (no text before '## Your Turn')")
    if len(excerpt) > EMBED_DESCRIPTION_MAX:
        raise _Problem(
            f"excerpt is {len(excerpt)} characters, over the embed description limit of {EMBED_DESCRIPTION_MAX}"
        )
    for section in SECTIONS:
        if section not in sections:
            raise _Problem(f"missing '## {section}' section")
        if not sections[section]:
            raise _Problem(f"empty '## {section}' section")
    your_turn = sections[YOUR_TURN]
    reflect = sections[REFLECT]
    if len(your_turn) > EMBED_FIELD_VALUE_MAX:
        raise _Problem(
            f"'Your Turn' is {len(your_turn)} characters, over the embed field limit of {EMBED_FIELD_VALUE_MAX}"
        )
    if len(reflect) > REFLECT_MAX:
        raise _Problem(f"'Reflect' question is {len(reflect)} characters, over the limit of {REFLECT_MAX}")

    lesson = Lesson(
        id=lesson_id,
        track=meta["track"],
        order=order,
        title=title,
        tags=tags,
        excerpt=excerpt,
        your_turn=your_turn,
        reflect=reflect,
        path=path,
    )
    if lesson.embed_length > EMBED_TOTAL_MAX:
        raise _Problem(
            f"title, excerpt, 'Your Turn' and 'Reflect' together are {lesson.embed_length} characters,"
            f" over the embed total of {EMBED_TOTAL_MAX}"
        )
    return lesson


def _split_front_matter(text: str) -> tuple[dict[str, str], str]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise _Problem("missing front matter (the file must start with a '---' line)")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise _Problem("missing front matter (no closing '---' line)") from None

    meta: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key:
            raise _Problem(f"front matter line {number} is not 'key: value': {line.strip()!r}")
        if key not in KNOWN_FIELDS:
            raise _Problem(f"unknown front matter field '{key}' on line {number}")
        if key in meta:
            raise _Problem(f"front matter field '{key}' appears twice")
        meta[key] = _unquote(value.strip())
    return meta, "\n".join(lines[end + 1 :])


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return value


def _parse_tags(value: str) -> tuple[str, ...]:
    value = value.strip()
    if not value:
        return ()
    if value.startswith("["):
        if not value.endswith("]"):
            raise _Problem(f"tags must look like [a, b], got {value!r}")
        value = value[1:-1]
    tags = (_unquote(tag.strip()) for tag in value.split(","))
    return tuple(dict.fromkeys(tag for tag in tags if tag))


def _split_sections(body: str) -> tuple[str, dict[str, str]]:
    """The excerpt (text before the first ``## `` heading) and the known sections by name."""
    canonical = {name.casefold(): name for name in SECTIONS}
    excerpt_lines: list[str] = []
    sections: dict[str, list[str]] = {}
    current = excerpt_lines
    in_fence = False
    for line in body.splitlines():
        if _FENCE_RE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("## "):
            heading = line[3:].strip().rstrip("#").strip()
            name = canonical.get(heading.casefold())
            if name is None:
                expected = " and ".join(f"'## {section}'" for section in SECTIONS)
                raise _Problem(f"unknown section '## {heading}' (only {expected} are allowed)")
            if name in sections:
                raise _Problem(f"section '## {name}' appears twice")
            current = sections[name] = []
            continue
        current.append(line)
    return (
        "\n".join(excerpt_lines).strip(),
        {name: "\n".join(lines).strip() for name, lines in sections.items()},
    )


def _show(path: Path) -> str:
    """A path as people read it: relative to the repo root when inside it (``data/lessons/core/01-x.md``)."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)
