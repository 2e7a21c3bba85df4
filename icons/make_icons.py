"""Draws DataUploader's artwork: the app icon and the tray's state icons, as PNG (Linux) and ICO (Windows).

The one source of every image in this folder; run ``python icons/make_icons.py`` after changing it and commit
its output. States differ by the SHAPE of a badge, not by colour alone, so colour-blind users can tell them
apart in a 16-pixel tray: idle has no badge, syncing a round badge with a check mark, uploading a round badge
with an up arrow, paused a square badge with two bars, attention a triangle with an exclamation mark.
Everything is drawn four times larger and scaled down, which anti-aliases the small sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
STATES = ("idle", "syncing", "uploading", "paused", "attention")

BLUE = (33, 102, 172, 255)
NAVY = (16, 52, 96, 255)
WHITE = (255, 255, 255, 255)
GREEN = (26, 140, 60, 255)
AMBER = (120, 120, 120, 255)
RED = (200, 50, 30, 255)

Draw = Callable[[ImageDraw.ImageDraw, int], None]


def _base(d: ImageDraw.ImageDraw, s: int) -> None:
    """A rounded square holding an arrow that rises out of a tray: data going up to storage."""
    m = s * 0.06
    d.rounded_rectangle(
        (m, m, s - m, s - m), radius=s * 0.2, fill=BLUE, outline=NAVY, width=max(1, round(s * 0.03))
    )
    cx = s * 0.5
    # the arrow
    d.polygon(
        [
            (cx, s * 0.16),
            (s * 0.76, s * 0.44),
            (s * 0.59, s * 0.44),
            (s * 0.59, s * 0.62),
            (s * 0.41, s * 0.62),
            (s * 0.41, s * 0.44),
            (s * 0.24, s * 0.44),
        ],
        fill=WHITE,
    )
    # the tray under it
    w = max(2, round(s * 0.08))
    d.line(
        [(s * 0.2, s * 0.64), (s * 0.2, s * 0.8), (s * 0.8, s * 0.8), (s * 0.8, s * 0.64)],
        fill=WHITE,
        width=w,
        joint="curve",
    )


def _badge_box(s: int) -> tuple[float, float, float, float]:
    return (s * 0.44, s * 0.44, s * 1.0, s * 1.0)


def _round_badge(d: ImageDraw.ImageDraw, s: int, fill: tuple[int, ...]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = _badge_box(s)
    d.ellipse((x0, y0, x1, y1), fill=fill, outline=WHITE, width=max(2, round(s * 0.05)))
    return x0, y0, x1, y1


def _syncing(d: ImageDraw.ImageDraw, s: int) -> None:
    x0, y0, x1, _ = _round_badge(d, s, GREEN)
    w = x1 - x0
    d.line(
        [(x0 + w * 0.25, y0 + w * 0.52), (x0 + w * 0.43, y0 + w * 0.7), (x0 + w * 0.76, y0 + w * 0.32)],
        fill=WHITE,
        width=max(2, round(w * 0.14)),
        joint="curve",
    )


def _uploading(d: ImageDraw.ImageDraw, s: int) -> None:
    x0, y0, x1, _ = _round_badge(d, s, NAVY)
    w = x1 - x0
    cx = x0 + w / 2
    d.polygon([(cx, y0 + w * 0.18), (x0 + w * 0.78, y0 + w * 0.5), (x0 + w * 0.22, y0 + w * 0.5)], fill=WHITE)
    d.rectangle((cx - w * 0.1, y0 + w * 0.48, cx + w * 0.1, y0 + w * 0.8), fill=WHITE)


def _paused(d: ImageDraw.ImageDraw, s: int) -> None:
    x0, y0, x1, y1 = _badge_box(s)
    d.rounded_rectangle(
        (x0, y0, x1, y1), radius=s * 0.06, fill=AMBER, outline=WHITE, width=max(2, round(s * 0.05))
    )
    w = x1 - x0
    for left in (0.27, 0.57):
        d.rectangle((x0 + w * left, y0 + w * 0.24, x0 + w * (left + 0.16), y0 + w * 0.76), fill=WHITE)


def _attention(d: ImageDraw.ImageDraw, s: int) -> None:
    x0, y0, x1, y1 = (s * 0.38, s * 0.4, s * 1.0, s * 0.98)
    w = x1 - x0
    tri = [(x0 + w / 2, y0), (x1, y1), (x0, y1)]
    d.polygon(tri, fill=RED, outline=WHITE, width=max(2, round(s * 0.05)))
    cx = x0 + w / 2
    d.rectangle((cx - w * 0.06, y0 + w * 0.3, cx + w * 0.06, y0 + w * 0.62), fill=WHITE)
    d.ellipse((cx - w * 0.07, y0 + w * 0.7, cx + w * 0.07, y0 + w * 0.84), fill=WHITE)


BADGES: dict[str, Draw | None] = {
    "idle": None,
    "syncing": _syncing,
    "uploading": _uploading,
    "paused": _paused,
    "attention": _attention,
}


def render(state: str | None, size: int) -> Image.Image:
    """The app icon (``state`` None) or a state icon at ``size`` pixels."""
    big = max(256, size * 4)
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    _base(d, big)
    badge = BADGES[state] if state else None
    if badge is not None:
        badge(d, big)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    for state in (None, *STATES):
        stem = "datauploader" if state is None else f"state-{state}"
        images = {size: render(state, size) for size in sorted(set(PNG_SIZES) | set(ICO_SIZES))}
        for size in PNG_SIZES:
            images[size].save(HERE / f"{stem}-{size}.png", optimize=True)
        images[256].save(
            HERE / f"{stem}.ico",
            sizes=[(n, n) for n in ICO_SIZES],
            append_images=[images[n] for n in ICO_SIZES if n != 256],
        )


if __name__ == "__main__":
    main()
