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

Optional, all checked at start like the rest:

* ``module: <name>`` in the front matter places the lesson in one of its track's modules;
* ``formerly: [old-id]`` keeps a renamed lesson's old ids working (old buttons, a server's place in the track);
* an ``Outcome: …`` line inside ``## Your Turn`` says what the member has when the exercise is done;
* ``## Quick Reference``: one to three short lines (``/lesson show`` shows them);
* ``## FAQ``: ``Q: …`` / ``A: …`` pairs (``/lesson show`` shows them).

A track folder may hold ``_track.md`` describing the track (without one, a track is open to everyone)::

    ---
    track: finishing
    title: Finishing Craft
    unlock: 10
    ---
    One or two sentences on what the track is for.

    ## Modules
    - shape: Borrowed Shape
    - out: Out the Door

``unlock`` is the depth points a member needs to read the track privately (0: open to everyone).

The front matter is parsed here (``key: value`` lines and ``tags: [a, b]``), with no YAML
dependency. Every problem raises :class:`LessonError` naming the file and the problem, so a
broken lesson stops the bot at start instead of failing in front of a server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from coach.text import cut

T = TypeVar("T")

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
QUICK_REFERENCE = "Quick Reference"
FAQ = "FAQ"
SECTIONS = (YOUR_TURN, REFLECT)
OPTIONAL_SECTIONS = (QUICK_REFERENCE, FAQ)
REQUIRED_FIELDS = ("id", "track", "order", "title")
KNOWN_FIELDS = (*REQUIRED_FIELDS, "tags", "module", "formerly")
TRACK_FILE = "_track.md"
TRACK_FIELDS = ("track", "title", "unlock")
MODULES = "Modules"
ELLIPSIS = "…"
# The optional parts: an outcome line, up to three quick-reference lines, up to five FAQ pairs.
OUTCOME_PREFIX = "outcome:"
OUTCOME_MAX = 200
QUICK_REFERENCE_LINES = 3
QUICK_REFERENCE_LINE_MAX = 120
FAQ_MAX = 5
FAQ_QUESTION_MAX = 256  # an embed field name
UNLOCK_MAX = 10_000

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
    module: str | None = None
    outcome: str | None = None
    quick_reference: tuple[str, ...] = ()
    faq: tuple[tuple[str, str], ...] = ()
    formerly: tuple[str, ...] = ()

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
            + (len(self.outcome_line) + 2 if self.outcome else 0)
        )

    @property
    def outcome_line(self) -> str:
        return f"**You'll have:** {self.outcome}" if self.outcome else ""

    @property
    def extras_length(self) -> int:
        """Characters the Quick Reference and FAQ add when ``/lesson show`` shows the whole lesson."""
        total = len(QUICK_REFERENCE) + len("\n".join(self.quick_reference)) if self.quick_reference else 0
        return total + sum(len(q) + len(a) for q, a in self.faq)


@dataclass(frozen=True)
class Track:
    """A track's description: its title, the depth points that unlock it, its modules (name -> title)."""

    name: str
    title: str
    unlock: int = 0
    description: str = ""
    modules: tuple[tuple[str, str], ...] = ()
    path: Path | None = None

    def module_title(self, name: str | None) -> str | None:
        return dict(self.modules).get(name) if name else None


def default_track(name: str) -> Track:
    return Track(name, "Core Track" if name == DEFAULT_TRACK else f"{name.replace('-', ' ').title()} Track")


@dataclass(frozen=True)
class LessonLibrary:
    lessons: tuple[Lesson, ...]
    track_info: tuple[Track, ...] = ()
    _by_id: dict[str, Lesson] = field(init=False, repr=False, compare=False)
    _tracks: dict[str, Track] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        described = {track.name: track for track in self.track_info}
        names = dict.fromkeys(lesson.track for lesson in self.lessons)
        tracks = {name: described.get(name) or default_track(name) for name in names}
        # Tracks in the order a member meets them: by unlock, then name. Lessons follow their track.
        ranked = sorted(tracks.values(), key=lambda track: (track.unlock, track.name))
        rank = {track.name: i for i, track in enumerate(ranked)}
        ordered = tuple(sorted(self.lessons, key=lambda lesson: (rank[lesson.track], lesson.order)))
        object.__setattr__(self, "lessons", ordered)
        object.__setattr__(self, "track_info", tuple(ranked))
        by_id = {old: lesson for lesson in ordered for old in lesson.formerly}
        by_id.update({lesson.id: lesson for lesson in ordered})
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_tracks", {track.name: track for track in ranked})

    def __len__(self) -> int:
        return len(self.lessons)

    @property
    def tracks(self) -> tuple[str, ...]:
        return tuple(track.name for track in self.track_info)

    def track_of(self, name: str) -> Track:
        return self._tracks.get(name) or default_track(name)

    @property
    def first_track(self) -> str:
        """The track a server starts with: Core when the library has it, else the first open track."""
        if DEFAULT_TRACK in self._tracks:
            return DEFAULT_TRACK
        return self.track_info[0].name if self.track_info else DEFAULT_TRACK

    def get(self, lesson_id: str) -> Lesson | None:
        """A lesson by its id, or by an id it had before it was renamed (``formerly``)."""
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
    found = sorted(path for path in directory.rglob("*.md") if path.is_file())
    paths = [path for path in found if path.name != TRACK_FILE]
    if not paths:
        raise LessonError(f"{_show(directory)}: no lesson files (*.md) found")

    lessons = [parse_lesson(path) for path in paths]
    tracks: dict[str, Track] = {}
    for path in (path for path in found if path.name == TRACK_FILE):
        track = parse_track(path)
        other = tracks.get(track.name)
        if other is not None:
            raise LessonError(f"{_show(path)}: track '{track.name}' is described twice (also in {_show(other.path)})")
        tracks[track.name] = track
    with_lessons = {lesson.track for lesson in lessons}
    for track in tracks.values():
        if track.name not in with_lessons:
            raise LessonError(f"{_show(track.path)}: track '{track.name}' has no lessons")
    for lesson in lessons:
        if lesson.module is None:
            continue
        track = tracks.get(lesson.track)
        if track is None or track.module_title(lesson.module) is None:
            declared = ", ".join(name for name, _ in track.modules) if track and track.modules else "none"
            raise LessonError(f"{_show(lesson.path)}: module '{lesson.module}' does not exist in track "
                              f"'{lesson.track}' (its {TRACK_FILE} declares: {declared})")

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
    former: dict[str, Lesson] = {}
    for lesson in lessons:
        for old in lesson.formerly:
            other = by_id.get(old) or former.get(old)
            if other is not None:
                raise LessonError(f"{_show(lesson.path)}: former id '{old}' is also used by {_show(other.path)}")
            former[old] = lesson
    return LessonLibrary(tuple(lessons), tuple(tracks.values()))


def parse_track(path: Path) -> Track:
    """Read one ``_track.md``; raise :class:`LessonError` naming the file on any problem."""
    return _read(path, _parse_track)


def _parse_track(text: str, path: Path) -> Track:
    meta, body = _split_front_matter(text, TRACK_FIELDS)
    for key in ("track", "title"):
        if not meta.get(key):
            raise _Problem(f"missing field '{key}'")
    track = meta["track"]
    if not _ID_RE.match(track) or len(track) > LESSON_ID_MAX:
        raise _Problem(f"track '{track}' must be lowercase letters, digits, '-' or '_'")
    raw = meta.get("unlock", "0") or "0"
    try:
        unlock = int(raw)
    except ValueError:
        raise _Problem(f"unlock '{raw}' is not a whole number of depth points") from None
    if not 0 <= unlock <= UNLOCK_MAX:
        raise _Problem(f"unlock {unlock} must be between 0 and {UNLOCK_MAX:,} depth points")
    title = meta["title"]
    if len(title) > 100:
        raise _Problem(f"title is {len(title)} characters, over 100")
    description, sections = _split_sections(body, (MODULES,))
    modules: dict[str, str] = {}
    for line in sections.get(MODULES, "").splitlines():
        line = line.strip().removeprefix("- ").strip()
        if not line:
            continue
        key, sep, module_title = line.partition(":")
        key, module_title = key.strip(), module_title.strip()
        if not sep or not _ID_RE.match(key) or not module_title:
            raise _Problem(f"module line {line!r} is not '- name: Title'")
        if key in modules:
            raise _Problem(f"module '{key}' is declared twice")
        modules[key] = cut(module_title, 100)
    if len(description) > EMBED_FIELD_VALUE_MAX:
        raise _Problem(f"description is {len(description)} characters, over {EMBED_FIELD_VALUE_MAX}")
    return Track(track, title, unlock, description, tuple(modules.items()), path)


def parse_lesson(path: Path) -> Lesson:
    """Read one lesson file; raise :class:`LessonError` naming the file on any problem."""
    return _read(path, _parse)


def _read(path: Path, parse: Callable[[str, Path], T]) -> T:
    name = _show(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LessonError(f"{name}: cannot read file ({exc})") from exc
    try:
        return parse(text, path)
    except _Problem as problem:
        raise LessonError(f"{name}: {problem}") from None


class _Problem(Exception):
    """A problem in a file, before the file name is added."""


def _parse(text: str, path: Path) -> Lesson:
    meta, body = _split_front_matter(text, KNOWN_FIELDS)
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
    formerly = _parse_tags(meta.get("formerly", ""))
    for old in formerly:
        if not _ID_RE.match(old) or len(old) > LESSON_ID_MAX or old == lesson_id:
            raise _Problem(f"former id '{old}' must be a lesson id other than this one's")

    module = meta.get("module") or None
    if module is not None and not _ID_RE.match(module):
        raise _Problem(f"module '{module}' must be lowercase letters, digits, '-' or '_'")

    excerpt, sections = _split_sections(body, SECTIONS + OPTIONAL_SECTIONS)
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
    your_turn, outcome = _split_outcome(sections[YOUR_TURN])
    reflect = sections[REFLECT]
    quick = _parse_quick_reference(sections[QUICK_REFERENCE]) if QUICK_REFERENCE in sections else ()
    faq = _parse_faq(sections[FAQ]) if FAQ in sections else ()
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
        module=module,
        outcome=outcome,
        quick_reference=quick,
        faq=faq,
        formerly=formerly,
    )
    if lesson.embed_length > EMBED_TOTAL_MAX:
        raise _Problem(
            f"title, excerpt, 'Your Turn' and 'Reflect' together are {lesson.embed_length} characters,"
            f" over the embed total of {EMBED_TOTAL_MAX}"
        )
    if lesson.embed_length + lesson.extras_length > EMBED_TOTAL_MAX:
        raise _Problem(
            f"with its Quick Reference and FAQ the lesson is {lesson.embed_length + lesson.extras_length}"
            f" characters, over the embed total of {EMBED_TOTAL_MAX}"
        )
    return lesson


def _split_outcome(your_turn: str) -> tuple[str, str | None]:
    """The exercise and its optional ``Outcome: …`` line (what the member has when it is done)."""
    kept: list[str] = []
    outcome: str | None = None
    for line in your_turn.splitlines():
        if line.strip().casefold().startswith(OUTCOME_PREFIX):
            if outcome is not None:
                raise _Problem("'Your Turn' has two 'Outcome:' lines")
            outcome = line.strip()[len(OUTCOME_PREFIX):].strip()
            if not outcome:
                raise _Problem("empty 'Outcome:' line in 'Your Turn'")
            if len(outcome) > OUTCOME_MAX:
                raise _Problem(f"'Outcome:' line is {len(outcome)} characters, over the limit of {OUTCOME_MAX}")
        else:
            kept.append(line)
    exercise = "\n".join(kept).strip()
    if not exercise:
        raise _Problem("'Your Turn' has an outcome but no exercise")
    return exercise, outcome


def _parse_quick_reference(text: str) -> tuple[str, ...]:
    lines = [line.strip().removeprefix("- ").removeprefix("* ").strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) > QUICK_REFERENCE_LINES:
        raise _Problem(f"'Quick Reference' has {len(lines)} lines; keep it to {QUICK_REFERENCE_LINES} short ones")
    for line in lines:
        if len(line) > QUICK_REFERENCE_LINE_MAX:
            raise _Problem(f"'Quick Reference' line {line[:30]!r}… is {len(line)} characters,"
                           f" over {QUICK_REFERENCE_LINE_MAX}")
    return tuple(lines)


def _parse_faq(text: str) -> tuple[tuple[str, str], ...]:
    """``Q: …`` then ``A: …`` (an answer may run over several lines), pair after pair."""
    pairs: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        head = line[:2].casefold()
        if head == "q:":
            if pairs and not pairs[-1][1]:
                raise _Problem(f"FAQ question {cut(pairs[-1][0], 60)!r} has no answer (add an 'A:' line after it)")
            pairs.append([line[2:].strip(), ""])
        elif head == "a:":
            if not pairs or pairs[-1][1]:
                raise _Problem(f"FAQ answer {cut(line[2:].strip(), 60)!r} has no question before it")
            pairs[-1][1] = line[2:].strip() or " "
        elif line:
            if not pairs:
                raise _Problem(f"FAQ must start with a 'Q:' line, got {cut(line, 40)!r}")
            part = 1 if pairs[-1][1] else 0
            pairs[-1][part] += " " + line
    if not pairs:
        raise _Problem("empty '## FAQ' section")
    out = []
    for question, answer in pairs:
        question, answer = question.strip(), answer.strip()
        if not question:
            raise _Problem("FAQ has an empty 'Q:' line")
        if not answer:
            raise _Problem(f"FAQ question {cut(question, 60)!r} has no answer (add an 'A:' line after it)")
        if len(question) > FAQ_QUESTION_MAX:
            raise _Problem(f"FAQ question {cut(question, 30)!r} is {len(question)} characters, over {FAQ_QUESTION_MAX}")
        if len(answer) > EMBED_FIELD_VALUE_MAX:
            raise _Problem(f"FAQ answer to {cut(question, 30)!r} is {len(answer)} characters,"
                           f" over {EMBED_FIELD_VALUE_MAX}")
        out.append((question, answer))
    if len(out) > FAQ_MAX:
        raise _Problem(f"FAQ has {len(out)} questions; keep it to {FAQ_MAX}")
    return tuple(out)


def _split_front_matter(text: str, known: tuple[str, ...]) -> tuple[dict[str, str], str]:
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
        if key not in known:
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


def _split_sections(body: str, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """The excerpt (text before the first ``## `` heading) and the known sections by name."""
    canonical = {name.casefold(): name for name in allowed}
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
                expected = ", ".join(f"'## {section}'" for section in allowed)
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
