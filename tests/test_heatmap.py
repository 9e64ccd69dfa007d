import io
from datetime import date, timedelta

import pytest
from PIL import Image

from coach.heatmap import (
    BACKGROUND,
    CELL,
    COLORS,
    GAP,
    MARGIN_LEFT,
    MARGIN_TOP,
    cell_origin,
    grid_start,
    heatmap_size,
    render_heatmap,
)

WED = date(2025, 3, 12)  # a Wednesday
MON = date(2025, 3, 10)
SUN = date(2025, 3, 16)


def decode(png: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    return img.convert("RGB")


def centre(week_index: int, weekday: int) -> tuple[int, int]:
    x, y = cell_origin(week_index, weekday)
    return x + CELL // 2, y + CELL // 2


def pixel(img: Image.Image, week_index: int, weekday: int) -> tuple[int, int, int]:
    return img.getpixel(centre(week_index, weekday))


def test_cell_origin_layout():
    assert cell_origin(0, 0) == (MARGIN_LEFT, MARGIN_TOP)
    assert cell_origin(1, 0) == (MARGIN_LEFT + CELL + GAP, MARGIN_TOP)
    assert cell_origin(0, 6) == (MARGIN_LEFT, MARGIN_TOP + 6 * (CELL + GAP))
    with pytest.raises(ValueError):
        cell_origin(0, 7)


@pytest.mark.parametrize("weeks", [1, 4, 26, 53])
def test_size_matches_heatmap_size(weeks):
    img = decode(render_heatmap({}, WED, weeks=weeks))
    assert img.size == heatmap_size(weeks)
    # every cell fits inside the picture
    x, y = cell_origin(weeks - 1, 6)
    assert x + CELL <= img.width and y + CELL <= img.height


def test_default_is_26_weeks():
    assert decode(render_heatmap({}, WED)).size == heatmap_size(26) == heatmap_size()


def test_known_dates_have_their_colours():
    finished = WED - timedelta(days=1)  # Tuesday, last column
    unfinished = WED - timedelta(days=8)  # Tuesday, previous column
    skipped = WED - timedelta(days=30)
    missed = WED  # Wednesday, last column
    no_round = WED - timedelta(days=2)  # Monday, last column, not in mapping
    days = {finished: "finished", unfinished: "unfinished", skipped: "skipped", missed: "missed"}
    img = decode(render_heatmap(days, WED))
    last = 25
    assert pixel(img, last, 1) == COLORS["finished"]
    assert pixel(img, last - 1, 1) == COLORS["unfinished"]
    start = grid_start(WED)
    assert pixel(img, (skipped - start).days // 7, skipped.weekday()) == COLORS["skipped"]
    assert pixel(img, last, 2) == COLORS["missed"]
    assert pixel(img, last, no_round.weekday()) == COLORS["none"]
    # explicit "none" too
    img2 = decode(render_heatmap({no_round: "none"}, WED))
    assert pixel(img2, last, 0) == COLORS["none"]


def test_future_dates_are_background():
    img = decode(render_heatmap({WED + timedelta(days=1): "finished"}, WED))
    for weekday in (3, 4, 5, 6):  # Thu..Sun after a Wednesday end
        assert pixel(img, 25, weekday) == BACKGROUND
    assert pixel(img, 25, 2) == COLORS["none"]


def test_dates_before_the_grid_are_ignored():
    old = grid_start(WED) - timedelta(days=1)
    img = decode(render_heatmap({old: "finished"}, WED))
    assert all(pixel(img, 0, wd) == COLORS["none"] for wd in range(7))


def test_end_on_monday_starts_a_new_column():
    days = {MON: "finished", MON - timedelta(days=1): "missed"}  # Sunday before
    img = decode(render_heatmap(days, MON, weeks=4))
    assert pixel(img, 3, 0) == COLORS["finished"]
    assert pixel(img, 2, 6) == COLORS["missed"]
    for weekday in range(1, 7):
        assert pixel(img, 3, weekday) == BACKGROUND
    assert grid_start(MON, weeks=4) == MON - timedelta(weeks=3)


def test_end_on_sunday_fills_the_last_column():
    days = {MON: "finished", SUN: "missed", SUN + timedelta(days=1): "skipped"}
    img = decode(render_heatmap(days, SUN, weeks=4))
    assert pixel(img, 3, 0) == COLORS["finished"]
    assert pixel(img, 3, 6) == COLORS["missed"]
    assert all(pixel(img, 3, wd) != BACKGROUND for wd in range(7))
    assert grid_start(SUN, weeks=4) == MON - timedelta(weeks=3)


def test_every_grid_cell_before_end_is_drawn():
    img = decode(render_heatmap({}, SUN, weeks=26))
    assert all(pixel(img, w, wd) == COLORS["none"] for w in range(26) for wd in range(7))


def test_bad_status_key_raises():
    with pytest.raises(ValueError):
        render_heatmap({WED: "done"}, WED)
    with pytest.raises(ValueError):
        render_heatmap({WED - timedelta(days=1000): "bogus"}, WED)


def test_bad_weeks_raises():
    with pytest.raises(ValueError):
        render_heatmap({}, WED, weeks=0)
    with pytest.raises(ValueError):
        heatmap_size(0)


def test_labels_are_drawn():
    # Month labels above the grid and weekday labels left of it put some non-background pixels there.
    img = decode(render_heatmap({}, WED))
    top = img.crop((MARGIN_LEFT, 0, img.width, MARGIN_TOP - 1))
    left = img.crop((0, MARGIN_TOP, MARGIN_LEFT - 1, MARGIN_TOP + 7 * (CELL + GAP)))
    assert top.getcolors(maxcolors=10_000) != [(top.width * top.height, BACKGROUND)]
    assert left.getcolors(maxcolors=10_000) != [(left.width * left.height, BACKGROUND)]


def test_month_labels_do_not_depend_on_locale():
    import locale

    before = render_heatmap({}, WED)
    original = locale.setlocale(locale.LC_TIME)
    try:
        locale.setlocale(locale.LC_TIME, "de_DE.UTF-8")
    except locale.Error:
        pytest.skip("de_DE locale not available")
    try:
        assert render_heatmap({}, WED) == before
    finally:
        locale.setlocale(locale.LC_TIME, original)
