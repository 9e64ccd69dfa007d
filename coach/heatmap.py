"""GitHub-style check-in heatmap rendered as a PNG with Pillow.

Weeks are columns (oldest on the left, the last column is the week containing ``end``),
weekdays are rows (Monday on top). Month labels run along the top, Mon/Wed/Fri at the
left, a small legend below.

The picture is laid out at most 400 points wide (Discord shows an embed image up to about 400 px wide) and
drawn at ``SCALE`` (2x) so it stays sharp on high-density screens; every size below is in output pixels.

The palette never paints alarm red: a missed round is a calm slate blue, a gap rather than a warning. The five
states differ in lightness as well as hue, so they stay apart for red-green colour-blind members too
(``tests/test_heatmap.py`` checks every pair under deuteranopia and protanopia simulations); the legend names
each colour in words.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, timedelta
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "BACKGROUND",
    "CELL",
    "COLORS",
    "GAP",
    "LEGEND_HEIGHT",
    "MARGIN_BOTTOM",
    "MARGIN_LEFT",
    "MARGIN_RIGHT",
    "MARGIN_TOP",
    "MONTHS",
    "SCALE",
    "cell_origin",
    "grid_start",
    "heatmap_size",
    "render_heatmap",
]

SCALE = 2
CELL = 12 * SCALE
GAP = 2 * SCALE
MARGIN_LEFT = 28 * SCALE
MARGIN_TOP = 18 * SCALE
MARGIN_RIGHT = 6 * SCALE
LEGEND_HEIGHT = 20 * SCALE
MARGIN_BOTTOM = 4 * SCALE
RADIUS = 2 * SCALE
FONT_SIZE = 10 * SCALE

# Lightness, then hue, tells the states apart (CIE L*: finished 55, unfinished 85, skipped 74, missed 45, no round
# 23, on a background of 12), so the pairs that red-green colour blindness merges in hue keep apart in lightness.
COLORS: dict[str, tuple[int, int, int]] = {
    "finished": (16, 152, 92),     # emerald
    "unfinished": (245, 212, 70),  # warm yellow
    "skipped": (170, 184, 194),    # light blue-grey
    "missed": (94, 102, 160),      # calm slate blue: a gap, not an alarm
    "none": (54, 56, 60),          # no round that day
}
BACKGROUND = (30, 31, 34)
TEXT_COLOR = (196, 199, 204)

# Fixed English abbreviations: never depend on the process locale.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAY_LABELS = {0: "Mon", 2: "Wed", 4: "Fri"}
_LEGEND = (
    ("finished", "finished"),
    ("unfinished", "unfinished"),
    ("skipped", "skipped"),
    ("missed", "missed"),
    ("none", "no round"),
)

_STEP = CELL + GAP


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font (Aileron) at the picture's scale: no system font needed."""
    return ImageFont.load_default(size=FONT_SIZE)


def _check_weeks(weeks: int) -> None:
    if weeks < 1:
        raise ValueError("weeks must be at least 1")


def heatmap_size(weeks: int = 26) -> tuple[int, int]:
    """(width, height) in pixels of the PNG for ``weeks`` columns."""
    _check_weeks(weeks)
    width = MARGIN_LEFT + weeks * _STEP - GAP + MARGIN_RIGHT
    height = MARGIN_TOP + 7 * _STEP - GAP + LEGEND_HEIGHT + MARGIN_BOTTOM
    return width, height


def cell_origin(week_index: int, weekday: int) -> tuple[int, int]:
    """Top-left pixel of a cell: column ``week_index`` (0 = oldest), row ``weekday`` (Monday = 0)."""
    if not 0 <= weekday <= 6:
        raise ValueError("weekday must be 0 (Monday) .. 6 (Sunday)")
    if week_index < 0:
        raise ValueError("week_index must be >= 0")
    return MARGIN_LEFT + week_index * _STEP, MARGIN_TOP + weekday * _STEP


def grid_start(end: date, weeks: int = 26) -> date:
    """The Monday shown in column 0 when the last column is the week containing ``end``."""
    _check_weeks(weeks)
    return end - timedelta(days=end.weekday()) - timedelta(weeks=weeks - 1)


def render_heatmap(days: Mapping[date, str], end: date, weeks: int = 26) -> bytes:
    """PNG bytes of the heatmap.

    ``days`` maps a date to a key of COLORS; days in range that are absent are "none".
    Dates after ``end`` are left as background. Raises ValueError on an unknown key.
    """
    _check_weeks(weeks)
    for d, key in days.items():
        if key not in COLORS:
            raise ValueError(f"unknown heatmap status {key!r} for {d}")

    img = Image.new("RGB", heatmap_size(weeks), BACKGROUND)
    draw = ImageDraw.Draw(img)
    font = _font()
    start = grid_start(end, weeks)

    # Cells.
    n_days = (end - start).days + 1
    for i in range(n_days):
        d = start + timedelta(days=i)
        x, y = cell_origin(i // 7, i % 7)
        draw.rounded_rectangle((x, y, x + CELL - 1, y + CELL - 1), RADIUS, fill=COLORS[days.get(d, "none")])

    # Month labels (on a common baseline just above the grid): over the first column whose Monday falls in a new
    # month; the first column is labelled too unless that would collide with the next label.
    baseline = MARGIN_TOP - 5 * SCALE
    room = 2 * SCALE
    prev_right = -1
    for w in range(weeks):
        monday = start + timedelta(weeks=w)
        if w > 0 and monday.month == (monday - timedelta(weeks=1)).month:
            continue
        text = MONTHS[monday.month - 1]
        x, _ = cell_origin(w, 0)
        left, _, right, _ = draw.textbbox((x, baseline), text, font=font, anchor="ls")
        if left <= prev_right + room:
            continue
        if w == 0 and weeks > 1:
            # Skip the partial first month if the next month's label starts too soon.
            nxt = next(
                (k for k in range(1, weeks) if (start + timedelta(weeks=k)).month != monday.month),
                None,
            )
            if nxt is not None and cell_origin(nxt, 0)[0] <= right + room:
                continue
        if right > img.width:
            continue
        draw.text((x, baseline), text, fill=TEXT_COLOR, font=font, anchor="ls")
        prev_right = right

    # Weekday labels.
    for weekday, text in _WEEKDAY_LABELS.items():
        _, y = cell_origin(0, weekday)
        draw.text((2 * SCALE, y + CELL // 2), text, fill=TEXT_COLOR, font=font, anchor="lm")

    # Legend, left to right, as far as it fits: a swatch and its name in words for each state.
    swatch = CELL - 2 * SCALE
    ly = MARGIN_TOP + 7 * _STEP - GAP + 7 * SCALE
    lx = MARGIN_LEFT
    for key, label in _LEGEND:
        text_w = draw.textlength(label, font=font)
        if lx + swatch + 4 * SCALE + text_w > img.width - MARGIN_RIGHT:
            break
        draw.rounded_rectangle((lx, ly, lx + swatch - 1, ly + swatch - 1), RADIUS, fill=COLORS[key])
        draw.text((lx + swatch + 4 * SCALE, ly + swatch // 2), label, fill=TEXT_COLOR, font=font, anchor="lm")
        lx += int(swatch + 4 * SCALE + text_w + 11 * SCALE)

    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
