from __future__ import annotations

import re
from pathlib import Path

import pytest

import coach.lessons as lessons_module
from coach.lessons import (
    DEFAULT_LESSONS_DIR,
    EMBED_DESCRIPTION_MAX,
    EMBED_FIELD_VALUE_MAX,
    EMBED_TITLE_MAX,
    EMBED_TOTAL_MAX,
    MODAL_LABEL_MAX,
    REFLECT_MAX,
    Lesson,
    LessonError,
    LessonLibrary,
    cut,
    load_lessons,
    word_count,
)

CORE_TITLES_IN_ORDER = 12


# ---------------------------------------------------------------- the shipped core track


@pytest.fixture(scope="module")
def library() -> LessonLibrary:
    return load_lessons()


@pytest.fixture(scope="module")
def core(library: LessonLibrary) -> tuple[Lesson, ...]:
    return library.track("core")


def test_default_directory_is_data_lessons_in_repo() -> None:
    assert DEFAULT_LESSONS_DIR == Path(__file__).resolve().parent.parent / "data" / "lessons"


def test_core_track_has_twelve_lessons_in_order(core: tuple[Lesson, ...]) -> None:
    assert len(core) == CORE_TITLES_IN_ORDER
    assert [lesson.order for lesson in core] == list(range(1, 13))
    assert all(lesson.track == "core" for lesson in core)


def test_core_ids_unique_and_match_file_names(library: LessonLibrary, core: tuple[Lesson, ...]) -> None:
    ids = [lesson.id for lesson in library.lessons]
    assert len(ids) == len(set(ids))
    for lesson in core:
        # data/lessons/core/NN-slug.md  <->  core-NN-slug
        assert lesson.path.parent.name == "core"
        assert re.fullmatch(r"\d\d-[a-z0-9-]+\.md", lesson.path.name)
        assert lesson.path.name == f"{lesson.order:02d}-{lesson.id.removeprefix('core-')[3:]}.md"
        assert lesson.id.startswith(f"core-{lesson.order:02d}-")


def test_core_titles_unique(core: tuple[Lesson, ...]) -> None:
    assert len({lesson.title for lesson in core}) == len(core)


@pytest.mark.parametrize("order", range(1, 13))
def test_core_excerpt_is_120_to_250_words(core: tuple[Lesson, ...], order: int) -> None:
    lesson = core[order - 1]
    words = word_count(lesson.excerpt)
    assert 120 <= words <= 250, f"{lesson.id}: {words} words"


def test_core_every_lesson_fits_one_embed(core: tuple[Lesson, ...]) -> None:
    for lesson in core:
        assert 0 < len(lesson.title) <= EMBED_TITLE_MAX
        assert 0 < len(lesson.excerpt) <= EMBED_DESCRIPTION_MAX
        assert 0 < len(lesson.your_turn) <= EMBED_FIELD_VALUE_MAX
        assert 0 < len(lesson.reflect) <= min(REFLECT_MAX, EMBED_FIELD_VALUE_MAX)
        total = len(lesson.title) + len(lesson.excerpt) + len("Your Turn") + len(lesson.your_turn)
        total += len("Reflect") + len(lesson.reflect)
        assert lesson.embed_length == total <= EMBED_TOTAL_MAX


def test_core_your_turn_is_short_and_reflect_is_one_question(core: tuple[Lesson, ...]) -> None:
    for lesson in core:
        sentences = re.findall(r"[.!?](?:\s|$)", lesson.your_turn)
        assert 1 <= len(sentences) <= 4, lesson.id
        assert lesson.reflect.endswith("?"), lesson.id
        assert lesson.reflect.count("?") == 1, lesson.id
        assert "\n" not in lesson.reflect, lesson.id


def test_core_reflect_label_fits_a_modal(core: tuple[Lesson, ...]) -> None:
    for lesson in core:
        label = lesson.reflect_label
        assert 0 < len(label) <= MODAL_LABEL_MAX
        if len(lesson.reflect) > MODAL_LABEL_MAX:
            assert label.endswith("…")
            assert lesson.reflect.startswith(label[:-1])
        else:
            assert label == lesson.reflect


def test_core_text_avoids_banned_phrases_and_pings(core: tuple[Lesson, ...]) -> None:
    banned = ["fast-paced", "@everyone", "@here", "<@", "hustle", "grind", "at the end of the day"]
    for lesson in core:
        text = f"{lesson.title}\n{lesson.excerpt}\n{lesson.your_turn}\n{lesson.reflect}".lower()
        for phrase in banned:
            assert phrase not in text, f"{lesson.id}: {phrase!r}"


def test_core_openings_vary(core: tuple[Lesson, ...]) -> None:
    first_words = [lesson.excerpt.split()[0].lower() for lesson in core]
    assert len(set(first_words)) >= 10


def test_core_tags_parsed(core: tuple[Lesson, ...]) -> None:
    assert core[0].tags == ("accountability", "ambition")
    assert all(lesson.tags and all(tag == tag.strip() for tag in lesson.tags) for lesson in core)


# ---------------------------------------------------------------- library behaviour


def test_lessons_sorted_by_track_then_order(library: LessonLibrary) -> None:
    keys = [(lesson.track, lesson.order) for lesson in library.lessons]
    assert keys == sorted(keys)


def test_get(library: LessonLibrary) -> None:
    lesson = library.get("core-04-valley")
    assert lesson is not None and lesson.order == 4
    assert library.get("nope") is None


def test_track_unknown_is_empty(library: LessonLibrary) -> None:
    assert library.track("no-such-track") == ()
    assert library.track() == library.track("core")


def test_next_after_steps_and_wraps(core: tuple[Lesson, ...], library: LessonLibrary) -> None:
    assert library.next_after(None) == core[0]
    assert library.next_after(core[0].id) == core[1]
    assert library.next_after(core[10].id) == core[11]
    assert library.next_after(core[11].id) == core[0]
    # an id no longer in the track starts again at the first lesson
    assert library.next_after("core-99-removed") == core[0]


def test_next_after_other_track_and_empty_track(tmp_path: Path) -> None:
    write(tmp_path / "a" / "01-one.md", lesson_text(id="a-1", track="a", order=1))
    write(tmp_path / "b" / "01-one.md", lesson_text(id="b-1", track="b", order=1))
    write(tmp_path / "b" / "02-two.md", lesson_text(id="b-2", track="b", order=5))
    library = load_lessons(tmp_path)
    assert library.tracks == ("a", "b")
    assert library.next_after(None, track="b").id == "b-1"
    assert library.next_after("b-1", track="b").id == "b-2"
    assert library.next_after("b-2", track="b").id == "b-1"
    assert library.next_after("a-1", track="a").id == "a-1"  # a track of one wraps to itself
    with pytest.raises(LessonError, match="no lessons in track 'zzz'"):
        library.next_after(None, track="zzz")


def test_search(library: LessonLibrary) -> None:
    assert [lesson.id for lesson in library.search("valley")] == ["core-04-valley"]
    assert [lesson.id for lesson in library.search("DEADLINE")] == ["core-07-deadlines"]
    # matches the title too, not only the id
    assert [lesson.id for lesson in library.search("spine")] == ["core-01-ambition"]
    assert [lesson.id for lesson in library.search("core-1")] == [
        "core-10-capacity",
        "core-11-portfolio",
        "core-12-reflection",
    ]
    assert len(library.search("")) == len(library) == 24
    assert len(library.search("", limit=5)) == 5
    assert library.search("core", limit=0) == []
    assert library.search("no such lesson anywhere") == []


def test_search_limit_defaults_to_discord_choice_limit(tmp_path: Path) -> None:
    for n in range(1, 31):
        write(tmp_path / "x" / f"{n:02d}-l.md", lesson_text(id=f"x-{n:02d}", track="x", order=n))
    assert len(load_lessons(tmp_path).search("x")) == 25


# ---------------------------------------------------------------- helpers


def test_word_count() -> None:
    assert word_count("") == 0
    assert word_count("**Bold** move - don't stop: 16-bar loops, `IDEAS_v3`.") == 7
    assert word_count("- one\n- two\n\n> three") == 3


def test_cut() -> None:
    assert cut("short", 45) == "short"
    assert cut("  spaced\n  out  ", 45) == "spaced out"
    long = "What is one thing you keep learning about how you work, but never act on?"
    cut_text = cut(long, 45)
    assert len(cut_text) <= 45 and cut_text.endswith("…")
    assert long.startswith(cut_text[:-1])
    assert cut("x" * 100, 10) == "x" * 9 + "…"


# ---------------------------------------------------------------- validation


def lesson_text(
    *,
    id: str = "t-01-test",
    track: str = "t",
    order: int | str = 1,
    title: str = "A Test Lesson",
    tags: str = "[testing, sample]",
    excerpt: str = "Some words about finishing the track you started.",
    your_turn: str = "Bounce a rough mix today.",
    reflect: str = "What got in the way?",
) -> str:
    return (
        f"---\nid: {id}\ntrack: {track}\norder: {order}\ntitle: {title}\ntags: {tags}\n---\n"
        f"{excerpt}\n\n## Your Turn\n{your_turn}\n\n## Reflect\n{reflect}\n"
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def assert_load_fails(directory: Path, *fragments: str) -> str:
    with pytest.raises(LessonError) as info:
        load_lessons(directory)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_valid_minimal_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "t" / "01-test.md", lesson_text())
    (lesson,) = load_lessons(tmp_path).lessons
    assert lesson == Lesson(
        id="t-01-test",
        track="t",
        order=1,
        title="A Test Lesson",
        tags=("testing", "sample"),
        excerpt="Some words about finishing the track you started.",
        your_turn="Bounce a rough mix today.",
        reflect="What got in the way?",
        path=path,
    )


def test_front_matter_variants_accepted(tmp_path: Path) -> None:
    text = (
        "\ufeff---\r\nid: 't-1'\r\ntrack: \"t\"\r\norder:  7 \r\ntitle: Colons: Allowed Here\r\n"
        "tags: ['a', b, , a]\r\n---\r\nBody **text**.\r\n\r\n## your turn\r\nDo it.\r\n\r\n## Reflect ##\r\nWhy?\r\n"
    )
    write(tmp_path / "t" / "07-x.md", text)
    (lesson,) = load_lessons(tmp_path).lessons
    assert (lesson.id, lesson.track, lesson.order, lesson.title) == ("t-1", "t", 7, "Colons: Allowed Here")
    assert lesson.tags == ("a", "b")
    assert (lesson.excerpt, lesson.your_turn, lesson.reflect) == ("Body **text**.", "Do it.", "Why?")


def test_tags_optional(tmp_path: Path) -> None:
    write(tmp_path / "01.md", lesson_text().replace("tags: [testing, sample]\n", ""))
    assert load_lessons(tmp_path).lessons[0].tags == ()


def test_heading_inside_code_fence_is_not_a_section(tmp_path: Path) -> None:
    excerpt = "Try this:\n\n```\n## not a section\n```"
    write(tmp_path / "01.md", lesson_text(excerpt=excerpt))
    assert "## not a section" in load_lessons(tmp_path).lessons[0].excerpt


def test_error_names_file_relative_to_repo_for_shipped_paths() -> None:
    from coach.lessons import _show

    assert _show(DEFAULT_LESSONS_DIR / "core" / "03-x.md") == "data/lessons/core/03-x.md"


def test_missing_front_matter(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-bad.md", "Just text.\n\n## Your Turn\nDo.\n\n## Reflect\nWhy?\n")
    assert_load_fails(tmp_path, "01-bad.md", "missing front matter")


def test_unclosed_front_matter(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-bad.md", "---\nid: x\ntrack: t\norder: 1\ntitle: T\nBody\n")
    assert_load_fails(tmp_path, "01-bad.md", "missing front matter", "closing")


def test_empty_file(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-empty.md", "")
    assert_load_fails(tmp_path, "01-empty.md", "missing front matter")


@pytest.mark.parametrize("field", ["id", "track", "order", "title"])
def test_missing_field(tmp_path: Path, field: str) -> None:
    text = re.sub(rf"^{field}: .*\n", "", lesson_text(), flags=re.M)
    write(tmp_path / "t" / "03-x.md", text)
    assert_load_fails(tmp_path, "03-x.md", f"missing field '{field}'")


def test_empty_field_counts_as_missing(tmp_path: Path) -> None:
    write(tmp_path / "t" / "03-x.md", lesson_text(title=""))
    assert_load_fails(tmp_path, "03-x.md", "missing field 'title'")


@pytest.mark.parametrize("order", ["one", "1.5", "[1]"])
def test_order_not_an_integer(tmp_path: Path, order: str) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text(order=order))
    assert_load_fails(tmp_path, "01-x.md", "order", "not an integer")


def test_order_must_be_positive(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text(order=0))
    assert_load_fails(tmp_path, "01-x.md", "order 0 must be 1 or more")


def test_bad_id(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text(id="Has Spaces"))
    assert_load_fails(tmp_path, "01-x.md", "id 'Has Spaces'")
    write(tmp_path / "t" / "01-x.md", lesson_text(id="a" * 65))
    assert_load_fails(tmp_path, "01-x.md", "at most 64")


def test_malformed_and_unknown_front_matter(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text().replace("title: A Test Lesson", "A Test Lesson"))
    assert_load_fails(tmp_path, "01-x.md", "line 5", "not 'key: value'")
    write(tmp_path / "t" / "01-x.md", lesson_text().replace("tags:", "tag:"))
    assert_load_fails(tmp_path, "01-x.md", "unknown front matter field 'tag'")
    write(tmp_path / "t" / "01-x.md", lesson_text().replace("track: t\n", "track: t\ntrack: u\n"))
    assert_load_fails(tmp_path, "01-x.md", "'track' appears twice")
    write(tmp_path / "t" / "01-x.md", lesson_text(tags="[a, b"))
    assert_load_fails(tmp_path, "01-x.md", "tags must look like [a, b]")


def test_duplicate_id_names_both_files(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-first.md", lesson_text(id="same", order=1))
    write(tmp_path / "t" / "02-second.md", lesson_text(id="same", order=2))
    assert_load_fails(tmp_path, "01-first.md", "02-second.md", "duplicate id 'same'")


def test_duplicate_id_across_tracks(tmp_path: Path) -> None:
    write(tmp_path / "a" / "01-x.md", lesson_text(id="same", track="a"))
    write(tmp_path / "b" / "01-x.md", lesson_text(id="same", track="b"))
    message = assert_load_fails(tmp_path, "duplicate id 'same'")
    assert str(tmp_path / "a" / "01-x.md") in message and str(tmp_path / "b" / "01-x.md") in message


def test_duplicate_track_order_names_both_files(tmp_path: Path) -> None:
    write(tmp_path / "t" / "04-a.md", lesson_text(id="t-a", order=4))
    write(tmp_path / "t" / "04-b.md", lesson_text(id="t-b", order=4))
    assert_load_fails(tmp_path, "04-a.md", "04-b.md", "duplicate order 4 in track 't'")


def test_same_order_in_different_tracks_is_fine(tmp_path: Path) -> None:
    write(tmp_path / "a" / "01-x.md", lesson_text(id="a-1", track="a"))
    write(tmp_path / "b" / "01-x.md", lesson_text(id="b-1", track="b"))
    assert len(load_lessons(tmp_path)) == 2


@pytest.mark.parametrize("section", ["Your Turn", "Reflect"])
def test_missing_section(tmp_path: Path, section: str) -> None:
    text = lesson_text()
    text = re.sub(rf"## {section}\n[^\n]*\n", "", text)
    write(tmp_path / "t" / "01-x.md", text)
    assert_load_fails(tmp_path, "01-x.md", f"missing '## {section}' section")


@pytest.mark.parametrize("section", ["Your Turn", "Reflect"])
def test_empty_section(tmp_path: Path, section: str) -> None:
    kwargs = {"your_turn": ""} if section == "Your Turn" else {"reflect": "  "}
    write(tmp_path / "t" / "01-x.md", lesson_text(**kwargs))
    assert_load_fails(tmp_path, "01-x.md", f"empty '## {section}' section")


def test_unknown_section(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text(reflect="Why?\n\n## Homework\nMore."))
    assert_load_fails(tmp_path, "01-x.md", "unknown section '## Homework'")


def test_section_twice(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text(reflect="Why?\n\n## Reflect\nAgain?"))
    assert_load_fails(tmp_path, "01-x.md", "'## Reflect' appears twice")


def test_empty_excerpt(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text(excerpt="   \n"))
    assert_load_fails(tmp_path, "01-x.md", "empty excerpt")


def test_title_too_long(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text(title="T" * (EMBED_TITLE_MAX + 1)))
    assert_load_fails(tmp_path, "01-x.md", "title is 257 characters", str(EMBED_TITLE_MAX))


def test_title_at_limit_is_fine(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text(title="T" * EMBED_TITLE_MAX))
    assert len(load_lessons(tmp_path).lessons[0].title) == EMBED_TITLE_MAX


def test_excerpt_too_long_for_description(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text(excerpt="word " * 1000))
    assert_load_fails(tmp_path, "01-x.md", "excerpt is", str(EMBED_DESCRIPTION_MAX))


def test_your_turn_too_long_for_field(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text(your_turn="x" * (EMBED_FIELD_VALUE_MAX + 1)))
    assert_load_fails(tmp_path, "01-x.md", "'Your Turn' is 1025 characters", str(EMBED_FIELD_VALUE_MAX))


def test_reflect_too_long(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-x.md", lesson_text(reflect="w" * (REFLECT_MAX + 1) + "?"))
    assert_load_fails(tmp_path, "01-x.md", "'Reflect' question", str(REFLECT_MAX))


def test_per_part_limits_leave_room_in_the_embed_total() -> None:
    # With today's limits a lesson that passes every per-part check also fits the 6000 total,
    # with room for a footer; the total check below guards against the limits drifting.
    most = EMBED_TITLE_MAX + EMBED_DESCRIPTION_MAX + len("Your Turn") + EMBED_FIELD_VALUE_MAX
    most += len("Reflect") + REFLECT_MAX
    assert most <= EMBED_TOTAL_MAX - 300


def test_whole_embed_too_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # each part within its own limit, the sum over the total
    monkeypatch.setattr(lessons_module, "EMBED_TOTAL_MAX", 500)
    write(
        tmp_path / "t" / "01-x.md",
        lesson_text(title="T" * 200, excerpt="e" * 200, your_turn="y" * 100, reflect="r" * 10),
    )
    assert_load_fails(tmp_path, "01-x.md", "together are 526 characters", "embed total of 500")


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "README.txt").write_text("not a lesson")
    assert_load_fails(tmp_path, str(tmp_path), "no lesson files")


def test_missing_directory(tmp_path: Path) -> None:
    assert_load_fails(tmp_path / "nowhere", "nowhere", "not found")


def test_unreadable_encoding(tmp_path: Path) -> None:
    (tmp_path / "01-x.md").write_bytes(b"---\nid: \xff\xfe\n---\n")
    assert_load_fails(tmp_path, "01-x.md", "cannot read")


def test_lesson_error_message_format(tmp_path: Path) -> None:
    path = write(tmp_path / "core" / "03-x.md", lesson_text().replace("title: A Test Lesson\n", ""))
    message = assert_load_fails(tmp_path)
    assert message == f"{path}: missing field 'title'"


# ---------------------------------------------------------------- the Extension tracks and the richer format


@pytest.fixture(scope="module")
def extensions(library: LessonLibrary) -> tuple[Lesson, ...]:
    return library.track("finishing") + library.track("working")


def test_tracks_unlock_in_order_with_their_modules(library: LessonLibrary) -> None:
    assert [(t.name, t.title, t.unlock) for t in library.track_info] == [
        ("core", "Core Track", 0), ("finishing", "Finishing Craft", 10), ("working", "The Working Producer", 20)]
    assert [lesson.track for lesson in library.lessons] == ["core"] * 12 + ["finishing"] * 6 + ["working"] * 6
    finishing = library.track_of("finishing")
    assert [name for name, _ in finishing.modules] == ["shape", "judge", "out"]
    assert library.first_track == "core"


def test_extension_lessons_use_the_whole_format(extensions: tuple[Lesson, ...]) -> None:
    banned = ["fast-paced", "@everyone", "@here", "<@", "hustle", "grind", "at the end of the day", "guarantee"]
    assert len(extensions) == 12
    for lesson in extensions:
        assert 120 <= word_count(lesson.excerpt) <= 250, lesson.id
        assert lesson.module and lesson.outcome and len(lesson.quick_reference) == 3 and lesson.faq, lesson.id
        assert 1 <= len(re.findall(r"[.!?](?:\s|$)", lesson.your_turn)) <= 4, lesson.id
        assert lesson.reflect.endswith("?") and lesson.reflect.count("?") == 1, lesson.id
        assert all(question.endswith("?") for question, _ in lesson.faq), lesson.id
        text = "\n".join([lesson.title, lesson.excerpt, lesson.your_turn, lesson.reflect, *lesson.quick_reference,
                          *(q + a for q, a in lesson.faq)]).lower()
        for phrase in banned:
            assert phrase not in text, f"{lesson.id}: {phrase!r}"
    assert len({lesson.excerpt.split()[0].lower() for lesson in extensions}) >= 10


def rich_lesson(**overrides: str) -> str:
    parts = {
        "front": "module: basics\n",
        "turn": "Bounce a rough mix today.\nOutcome: a rough mix on your phone.",
        "extra": "## Quick Reference\n- one\n- two\n- three\n\n## FAQ\nQ: Why?\nA: Because it\nhelps.\nQ: When?\nA: Today.\n",
    }
    parts.update(overrides)
    return (f"---\nid: t-01\ntrack: t\norder: 1\ntitle: Rich\n{parts['front']}---\nSome words.\n\n"
            f"## Your Turn\n{parts['turn']}\n\n## Reflect\nWhat got in the way?\n\n{parts['extra']}")


TRACK = "---\ntrack: t\ntitle: Test Track\nunlock: {unlock}\n---\nAbout it.\n\n## Modules\n- basics: The Basics\n"


def test_rich_lesson_and_track_load(tmp_path: Path) -> None:
    write(tmp_path / "t" / "_track.md", TRACK.format(unlock=15))
    write(tmp_path / "t" / "01-rich.md", rich_lesson())
    library = load_lessons(tmp_path)
    (lesson,) = library.lessons
    assert lesson.your_turn == "Bounce a rough mix today." and lesson.outcome == "a rough mix on your phone."
    assert lesson.quick_reference == ("one", "two", "three")
    assert lesson.faq == (("Why?", "Because it helps."), ("When?", "Today."))
    track = library.track_of("t")
    assert (track.title, track.unlock, track.description, track.modules) == (
        "Test Track", 15, "About it.", (("basics", "The Basics"),))
    assert library.first_track == "t"  # no Core Track: the first one there is


@pytest.mark.parametrize("unlock", ["ten", "-5", "1.5", "99999999"])
def test_bad_unlock_value_is_refused(tmp_path: Path, unlock: str) -> None:
    write(tmp_path / "t" / "_track.md", TRACK.format(unlock=unlock))
    write(tmp_path / "t" / "01-rich.md", rich_lesson())
    assert_load_fails(tmp_path, "t/_track.md", "unlock")


def test_module_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "t" / "_track.md", TRACK.format(unlock=0))
    write(tmp_path / "t" / "01-rich.md", rich_lesson(front="module: advanced\n"))
    assert_load_fails(tmp_path, "t/01-rich.md", "module 'advanced' does not exist in track 't'", "declares: basics")


def test_module_without_a_track_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-rich.md", rich_lesson())
    assert_load_fails(tmp_path, "01-rich.md", "module 'basics' does not exist", "declares: none")


@pytest.mark.parametrize(("extra", "problem"), [
    ("## FAQ\nQ: Why?\nQ: When?\nA: Today.\n", "FAQ question 'Why?' has no answer"),
    ("## FAQ\nQ: Why?\n", "FAQ question 'Why?' has no answer"),
    ("## FAQ\nA: Because.\n", "has no question before it"),
    ("## FAQ\nJust text.\n", "FAQ must start with a 'Q:' line"),
    ("## Quick Reference\n- a\n- b\n- c\n- d\n", "'Quick Reference' has 4 lines"),
    ("## Quick Reference\n- " + "x" * 121 + "\n", "over 120"),
    ("## Homework\nx\n", "unknown section '## Homework'"),
])
def test_bad_faq_and_quick_reference_are_refused(tmp_path: Path, extra: str, problem: str) -> None:
    write(tmp_path / "t" / "_track.md", TRACK.format(unlock=0))
    write(tmp_path / "t" / "01-rich.md", rich_lesson(extra=extra))
    assert_load_fails(tmp_path, "t/01-rich.md", problem)


@pytest.mark.parametrize(("turn", "problem"), [
    ("Do it.\nOutcome:", "empty 'Outcome:' line"),
    ("Do it.\nOutcome: a\nOutcome: b", "two 'Outcome:' lines"),
    ("Outcome: a mix", "an outcome but no exercise"),
    ("Do it.\nOutcome: " + "x" * 201, "over the limit of 200"),
])
def test_bad_outcome_is_refused(tmp_path: Path, turn: str, problem: str) -> None:
    write(tmp_path / "t" / "_track.md", TRACK.format(unlock=0))
    write(tmp_path / "t" / "01-rich.md", rich_lesson(turn=turn))
    assert_load_fails(tmp_path, "01-rich.md", problem)


def test_track_file_problems_name_the_file(tmp_path: Path) -> None:
    write(tmp_path / "t" / "01-rich.md", rich_lesson(front=""))
    write(tmp_path / "u" / "_track.md", TRACK.replace("track: t", "track: u").format(unlock=0))
    assert_load_fails(tmp_path, "u/_track.md", "track 'u' has no lessons")
    write(tmp_path / "u" / "_track.md", "---\ntrack: u\ntitle: U\ncolour: red\n---\n")
    assert_load_fails(tmp_path, "u/_track.md", "unknown front matter field 'colour'")
    write(tmp_path / "u" / "_track.md", "---\ntrack: t\ntitle: U\n---\n\n## Modules\n- not a module line\n")
    assert_load_fails(tmp_path, "u/_track.md", "is not '- name: Title'")
