"""The lesson journey: which lesson a server reads next, which tracks a member has unlocked, exercises done.

A server reads one track at a time, in order; when it ends, the track its admins chose comes next (default: the
Core Track again). A member unlocks further tracks with depth points (+2 for a first reflection, +1 for a Your
Turn exercise marked done) and reads them privately; a lesson posted in the server is open to everyone there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from coach.errors import NotAllowed, NotFound
from coach.lessons import Lesson, LessonError, LessonLibrary, Track
from coach.storage import Storage
from coach.text import cut

EXERCISE_POINTS = 1


# ---------------------------------------------------------------- what the server reads next


def next_lesson_for_server(library: LessonLibrary, posted: Sequence[str], chosen_next_track: str | None) -> Lesson:
    """The lesson a server gets next. `posted`: the lesson ids it was posted, newest first.

    * Nothing posted yet: the first lesson of the Core Track (or of the first track, for a library without one).
    * Otherwise the lesson after the newest posted one that is still in the library, in its track; a lesson
      renamed or removed since is skipped over, so the server never goes back to lesson 1 because of it.
    * At the end of a track: the first lesson of `chosen_next_track` when it exists and is not the track that
      just ended, else of the Core Track (the default), else the same track again.
    """
    if not library.lessons:
        raise LessonError("the lesson library is empty")
    for lesson_id in posted:
        lesson = library.get(lesson_id)
        if lesson is None:
            continue
        lessons = library.track(lesson.track)
        following = [other for other in lessons if other.order > lesson.order]
        if following:
            return following[0]
        return library.track(after_track(library, lesson.track, chosen_next_track))[0]
    return library.track(library.first_track)[0]


def after_track(library: LessonLibrary, ended: str, chosen_next_track: str | None) -> str:
    """The track that follows `ended`: the chosen one (unless it is the one that ended), else Core, else itself."""
    if chosen_next_track and chosen_next_track != ended and library.track(chosen_next_track):
        return chosen_next_track
    return library.first_track if library.track(library.first_track) else ended


def current_track(library: LessonLibrary, posted: Sequence[str]) -> str | None:
    """The track of the newest posted lesson still in the library."""
    for lesson_id in posted:
        lesson = library.get(lesson_id)
        if lesson is not None:
            return lesson.track
    return None


# ---------------------------------------------------------------- a member's tracks


def unlocked(track: Track, depth: int) -> bool:
    return depth >= track.unlock


def can_read(library: LessonLibrary, lesson: Lesson, depth: int, posted: Iterable[str]) -> bool:
    """Open to the member: its track is unlocked for them, or the lesson was posted in their server."""
    return unlocked(library.track_of(lesson.track), depth) or lesson.id in set(posted)


def require_readable(library: LessonLibrary, lesson: Lesson, depth: int, posted: Iterable[str]) -> None:
    """NotAllowed, saying how many depth points open it, when the lesson is locked for this member."""
    if can_read(library, lesson, depth, posted):
        return
    track = library.track_of(lesson.track)
    missing = track.unlock - depth
    raise NotAllowed(
        f"**{cut(lesson.title, 80)}** is in **{track.title}**, which opens at **{track.unlock}** depth points. "
        f"You have {depth}, so {missing} more will do it: reflect on a lesson (+2) or mark a Your Turn "
        f"exercise done (+{EXERCISE_POINTS}). `/lesson tracks` shows where you stand."
    )


def member_next(library: LessonLibrary, depth: int, seen: set[str], posted: Iterable[str]) -> Lesson | None:
    """The member's next lesson to read: the first one they haven't opened, reflected on or marked done.

    Tracks they unlocked with depth points come first, in unlock order (the server's own posts keep bringing
    the open track to the channel), then the open tracks; lessons posted here are open to them as well.
    """
    posted = set(posted)
    tracks = sorted(library.track_info, key=lambda t: (t.unlock == 0, t.unlock, t.name))
    for track in tracks:
        for lesson in library.track(track.name):
            if lesson.id not in seen and can_read(library, lesson, depth, posted):
                return lesson
    return None


def newly_unlocked(library: LessonLibrary, depth: int, told: set[str]) -> list[Track]:
    """Tracks behind a threshold (unlock > 0) this member has reached and has not been told about."""
    return [t for t in library.track_info if t.unlock > 0 and unlocked(t, depth) and t.name not in told]


def unlock_notice(tracks: Sequence[Track]) -> str:
    names = " and ".join(f"**{cut(t.title, 60)}**" for t in tracks)
    first = tracks[0]
    return (f"You unlocked {names} with your depth points. It's yours to read privately, at your pace: "
            f"`/lesson next` opens the first lesson, `/lesson tracks` shows the whole map. "
            f"({first.title} opened at {first.unlock}.)")


async def tell_unlocks(storage: Storage, library: LessonLibrary, guild_id: int, user_id: int, depth: int,
                       now: datetime) -> list[Track]:
    """Record tracks the member just reached and leave them a notice, once (their next private reply shows it).

    Asked after every award, so a crash between the award and this still tells them with their next one."""
    told = await storage.unlocked_tracks(guild_id, user_id)
    reached = newly_unlocked(library, depth, told)
    if not reached:
        return []
    new = await storage.record_unlocks(guild_id, user_id, [t.name for t in reached], unlock_notice(reached), now)
    return [t for t in reached if t.name in new]


# ---------------------------------------------------------------- exercises done


@dataclass(frozen=True)
class Done:
    awarded: bool       # the +1 was earned now (False: it was marked done before)
    depth_points: int   # after this


async def mark_done(storage: Storage, library: LessonLibrary, *, guild_id: int, user_id: int, display_name: str,
                    lesson_id: str, now: datetime) -> Done:
    """Mark a Your Turn exercise done: +1 depth point, once per member and lesson (the ledger holds it)."""
    if library.get(lesson_id) is None:
        raise NotFound("That lesson isn't in the library any more, so nothing was marked. "
                       "`/lesson list` shows the current ones.")
    await storage.touch_member(guild_id, user_id, display_name, now)
    awarded = await storage.award(guild_id, user_id, "exercise", EXERCISE_POINTS, lesson_id, now)
    depth = await storage.depth_points(guild_id, user_id)
    await tell_unlocks(storage, library, guild_id, user_id, depth, now)
    return Done(awarded, depth)


# ---------------------------------------------------------------- progress


@dataclass(frozen=True)
class TrackProgress:
    track: Track
    total: int
    reflected: int
    done: int
    open: bool


@dataclass(frozen=True)
class Progress:
    depth: int
    reflected: int
    done: int
    tracks: tuple[TrackProgress, ...]

    @property
    def unlocked_count(self) -> int:
        return sum(1 for t in self.tracks if t.open)


async def progress(storage: Storage, library: LessonLibrary, guild_id: int, user_id: int) -> Progress:
    depth = await storage.depth_points(guild_id, user_id)
    reflected = await storage.reflected_lesson_ids(guild_id, user_id)
    done = await storage.done_lesson_ids(guild_id, user_id)
    rows = []
    for track in library.track_info:
        ids = {lesson.id for lesson in library.track(track.name)}
        rows.append(TrackProgress(track, len(ids), len(ids & reflected), len(ids & done), unlocked(track, depth)))
    known = {lesson.id for lesson in library.lessons}
    return Progress(depth, len(reflected & known), len(done & known), tuple(rows))


def progress_lines(p: Progress) -> str:
    """One line per track: lock state, reflections and exercises done."""
    lines = []
    for t in p.tracks:
        mark = "🔓" if t.open else "🔒"
        line = f"{mark} **{cut(t.track.title, 60)}** · 💭 {t.reflected}/{t.total} reflected · ✅ {t.done}/{t.total} done"
        if not t.open:
            line += f" · opens at {t.track.unlock} depth ({t.track.unlock - p.depth} to go)"
        lines.append(line)
    return "\n".join(lines)


def progress_summary(p: Progress) -> str:
    """The short form for /stats."""
    return (f"✨ **{p.depth:,}** depth points · 💭 {p.reflected} reflected · ✅ {p.done} exercises done · "
            f"🔓 {p.unlocked_count} of {len(p.tracks)} tracks open")
