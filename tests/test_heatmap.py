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
    SCALE,
    TEXT_COLOR,
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


# ----------------------------------------------------------------------------- sharp, calm, colour-blind safe
#
# The picture is drawn at 2x and must fit Discord's embed image box (shown up to about 400 x 300 px), and its five
# states must stay apart for everyone. "Apart" is measured as CIEDE2000 colour difference (CIE 2001, the standard
# perceptual distance: about 1-2 is a just noticeable difference for large patches). The bar is 20, ten times that:
# small 24 x 24 px cells seen side by side at a glance need a wide margin, and 20 is where two samples read as
# different colour names rather than shades of one. It must hold in normal vision and under the two common
# red-green deficiencies (deuteranopia, protanopia; together about 2% of men as dichromats and 6% as milder
# anomalous trichromats), each simulated two standard ways:
#
# * Machado, Oliveira & Fernandes 2009, severity 1.0: one 3x3 matrix on linear RGB.
# * Vienot, Brettel & Mollon 1999: linear RGB to LMS cone space, the missing cone replaced from the other two,
#   back to RGB.

DISCORD_IMAGE_BOX = (400, 300)  # how large Discord shows an embed image, in CSS pixels
MIN_DELTA_E = 20.0
WCAG_AAA = 7.0

MACHADO = {
    "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998)),
    "deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413),
                     (-0.011820, 0.042940, 0.968881)),
}
RGB_TO_LMS = ((17.8824, 43.5161, 4.11935), (3.45565, 27.1554, 3.86714), (0.0299566, 0.184309, 1.46709))
VIENOT_LMS = {
    "protanopia": ((0.0, 2.02344, -2.52581), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "deuteranopia": ((1.0, 0.0, 0.0), (0.494207, 0.0, 1.24827), (0.0, 0.0, 1.0)),
}

Matrix = tuple[tuple[float, float, float], ...]
RGB = tuple[float, float, float]


def _mul(m: Matrix, v: RGB) -> RGB:
    return tuple(sum(m[i][j] * v[j] for j in range(3)) for i in range(3))  # type: ignore[return-value]


def _matmul(a: Matrix, b: Matrix) -> Matrix:
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)) for i in range(3))


def _inverse(m: Matrix) -> Matrix:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return ((((e * i - f * h) / det), (c * h - b * i) / det, (b * f - c * e) / det),
            ((f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det),
            ((d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det))


SIMULATIONS: dict[str, Matrix | None] = {
    "normal vision": None,
    **{f"{kind} (Machado 2009)": m for kind, m in MACHADO.items()},
    **{f"{kind} (Vienot 1999)": _matmul(_inverse(RGB_TO_LMS), _matmul(m, RGB_TO_LMS)) for kind, m in VIENOT_LMS.items()},
}


def to_linear(c: float) -> float:
    c /= 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def to_srgb(c: float) -> float:
    c = min(max(c, 0.0), 1.0)
    return 255 * (12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055)


def simulate(rgb: tuple[int, int, int], matrix: Matrix | None) -> RGB:
    if matrix is None:
        return tuple(float(c) for c in rgb)  # type: ignore[return-value]
    return tuple(to_srgb(c) for c in _mul(matrix, tuple(to_linear(c) for c in rgb)))  # type: ignore[return-value]


def lab(rgb: RGB) -> RGB:
    """sRGB (0-255) to CIELAB under D65."""
    r, g, b = (to_linear(c) for c in rgb)
    xyz = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047, \
        0.2126729 * r + 0.7151522 * g + 0.0721750 * b, \
        (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883
    fx, fy, fz = (t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116 for t in xyz)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def delta_e2000(lab1: RGB, lab2: RGB) -> float:
    """CIEDE2000 (Sharma, Wu & Dalal 2005 formulation; kL = kC = kH = 1)."""
    import math

    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    c_bar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_bar ** 7 / (c_bar ** 7 + 25 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0
    if c1p * c2p == 0:
        dh = 0.0
    elif abs(h2p - h1p) <= 180:
        dh = h2p - h1p
    else:
        dh = h2p - h1p - 360 if h2p > h1p else h2p - h1p + 360
    d_h = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    l_bar, cp_bar = (l1 + l2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        h_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_bar = (h1p + h2p) / 2
    else:
        h_bar = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(h_bar - 30)) + 0.24 * math.cos(math.radians(2 * h_bar))
         + 0.32 * math.cos(math.radians(3 * h_bar + 6)) - 0.20 * math.cos(math.radians(4 * h_bar - 63)))
    r_c = 2 * math.sqrt(cp_bar ** 7 / (cp_bar ** 7 + 25 ** 7))
    r_t = -math.sin(math.radians(60 * math.exp(-(((h_bar - 275) / 25) ** 2)))) * r_c
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / math.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * cp_bar, 1 + 0.015 * cp_bar * t
    dl, dc = (l2 - l1) / s_l, (c2p - c1p) / s_c
    return math.sqrt(dl ** 2 + dc ** 2 + (d_h / s_h) ** 2 + r_t * dc * (d_h / s_h))


def relative_luminance(rgb: tuple[int, int, int]) -> float:
    r, g, b = (to_linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("lab1,lab2,expected", [  # Sharma, Wu & Dalal 2005, test data pairs 1, 7, 17, 25
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
])
def test_delta_e2000_matches_the_published_test_data(lab1: RGB, lab2: RGB, expected: float) -> None:
    assert delta_e2000(lab1, lab2) == pytest.approx(expected, abs=1e-4)


def test_the_simulations_do_what_they_should() -> None:
    # Greys are untouched; pure red and green, told apart in normal vision, collapse for both deficiencies.
    for name, matrix in SIMULATIONS.items():
        grey = simulate((128, 128, 128), matrix)
        assert all(abs(c - 128) < 2 for c in grey), name
        red, green = lab(simulate((220, 40, 40), matrix)), lab(simulate((60, 160, 40), matrix))
        assert (delta_e2000(red, green) > 60) == (name == "normal vision"), name


def rendered_state_colours() -> tuple[Image.Image, dict[str, tuple[int, int, int]]]:
    """Render one day of each state and read each cell's colour back from the decoded PNG."""
    end = SUN
    keyed = {"finished": end - timedelta(days=6), "unfinished": end - timedelta(days=5),
             "skipped": end - timedelta(days=4), "missed": end - timedelta(days=3), "none": end - timedelta(days=2)}
    img = decode(render_heatmap({d: k for k, d in keyed.items() if k != "none"}, end))
    start = grid_start(end)
    return img, {k: pixel(img, (d - start).days // 7, d.weekday()) for k, d in keyed.items()}


def test_drawn_at_2x_within_discords_image_box() -> None:
    img, _ = rendered_state_colours()
    assert SCALE == 2 and img.size == heatmap_size(26) == (792, 276)
    shown = (img.width / SCALE, img.height / SCALE)  # the size it is laid out for, sharp on 2x screens
    assert shown[0] <= DISCORD_IMAGE_BOX[0] and shown[1] <= DISCORD_IMAGE_BOX[1]
    assert CELL == 12 * SCALE  # 12 px squares as displayed, drawn with 24 px


def test_missed_is_calm_not_red() -> None:
    import math

    _, colours = rendered_state_colours()
    missed = colours["missed"]
    assert missed == COLORS["missed"]
    r, g, b = missed
    assert b > r and b > g  # blue leads, red does not
    lightness, a, b_ = lab(missed)
    hue = math.degrees(math.atan2(b_, a)) % 360
    assert 240 <= hue <= 300  # CIELAB hue of blue to violet; red sits around 0-45
    assert math.hypot(a, b_) < 40  # muted: a calm tone, not a signal colour
    assert delta_e2000(lab(missed), lab((231, 76, 60))) > 30  # far from the old alarm red


@pytest.mark.parametrize("vision", list(SIMULATIONS))
def test_every_state_stays_distinct_for_colour_blind_members(vision: str) -> None:
    _, colours = rendered_state_colours()
    matrix = SIMULATIONS[vision]
    seen = {k: lab(simulate(c, matrix)) for k, c in colours.items()}
    for other in ("finished", "unfinished", "skipped", "none"):
        distance = delta_e2000(seen["missed"], seen[other])
        assert distance >= MIN_DELTA_E, f"missed vs {other} under {vision}: {distance:.1f}"
    states = list(seen)
    for i, a in enumerate(states):  # the legend as a whole: every pair, not only missed
        for b in states[i + 1:]:
            assert delta_e2000(seen[a], seen[b]) >= MIN_DELTA_E, f"{a} vs {b} under {vision}"


def test_legend_shows_every_state_and_its_text_is_readable() -> None:
    img, _ = rendered_state_colours()
    legend = img.crop((0, MARGIN_TOP + 7 * (CELL + GAP), img.width, img.height))
    colours = {c for _, c in legend.getcolors(maxcolors=100_000)}
    assert all(COLORS[k] in colours for k in COLORS)
    # Legend and labels: light text on the dark background at WCAG AAA contrast (lightness alone, so it holds
    # for every kind of colour vision).
    contrast = (relative_luminance(TEXT_COLOR) + 0.05) / (relative_luminance(BACKGROUND) + 0.05)
    assert contrast >= WCAG_AAA
