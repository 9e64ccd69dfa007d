"""GitHub-style check-in heatmap rendered as a PNG with Pillow.

Weeks are columns (oldest on the left, the last column is the week containing ``end``),
weekdays are rows (Monday on top). Month labels run along the top, Mon/Wed/Fri at the
left, a small legend below.
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
    "cell_origin",
    "grid_start",
    "heatmap_size",
    "render_heatmap",
]

CELL = 12
GAP = 2
MARGIN_LEFT = 28
MARGIN_TOP = 18
MARGIN_RIGHT = 6
LEGEND_HEIGHT = 18
MARGIN_BOTTOM = 4

COLORS: dict[str, tuple[int, int, int]] = {
    "finished": (46, 204, 113),
    "unfinished": (241, 196, 15),
    "skipped": (149, 165, 166),
    "missed": (231, 76, 60),
    "none": (44, 47, 51),  # no round that day
}
BACKGROUND = (30, 31, 34)
TEXT_COLOR = (185, 187, 190)

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
    return ImageFont.load_default()


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
        draw.rectangle((x, y, x + CELL - 1, y + CELL - 1), fill=COLORS[days.get(d, "none")])

    # Month labels: over the first column whose Monday falls in a new month; the first
    # column is labelled too unless that would collide with the next label.
    label_y = 2
    prev_right = -1
    for w in range(weeks):
        monday = start + timedelta(weeks=w)
        if w > 0 and monday.month == (monday - timedelta(weeks=1)).month:
            continue
        text = MONTHS[monday.month - 1]
        x, _ = cell_origin(w, 0)
        left, _, right, _ = draw.textbbox((x, label_y), text, font=font)
        if left <= prev_right + 2:
            continue
        if w == 0 and weeks > 1:
            # Skip the partial first month if the next month's label starts too soon.
            nxt = next(
                (k for k in range(1, weeks) if (start + timedelta(weeks=k)).month != monday.month),
                None,
            )
            if nxt is not None and cell_origin(nxt, 0)[0] <= right + 2:
                continue
        if right > img.width:
            continue
        draw.text((x, label_y), text, fill=TEXT_COLOR, font=font)
        prev_right = right

    # Weekday labels.
    for weekday, text in _WEEKDAY_LABELS.items():
        _, y = cell_origin(0, weekday)
        draw.text((2, y + CELL // 2), text, fill=TEXT_COLOR, font=font, anchor="lm")

    # Legend, left to right, as far as it fits.
    ly = MARGIN_TOP + 7 * _STEP - GAP + 6
    lx = MARGIN_LEFT
    for key, label in _LEGEND:
        text_w = draw.textlength(label, font=font)
        if lx + CELL - 3 + 3 + text_w > img.width - MARGIN_RIGHT:
            break
        s = CELL - 3
        draw.rectangle((lx, ly, lx + s - 1, ly + s - 1), fill=COLORS[key])
        draw.text((lx + s + 3, ly + s // 2), label, fill=TEXT_COLOR, font=font, anchor="lm")
        lx += int(s + 3 + text_w + 10)

    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
