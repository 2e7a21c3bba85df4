"""The application icon for packaging (.ico for the Windows executables, .png for the Linux desktop entry).

The tray applet's artwork lives in ``icons/`` (``datauploader.ico`` and ``datauploader-256.png`` among the state
icons); packaging uses those. Where they are missing this draws a stand-in (an upward arrow into a tray) with
Pillow so every build has an icon. Run directly to write both files to a folder:
``python build/app_icon.py OUTDIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "icons"
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]


def _draw(size: int = 256):  # type: ignore[no-untyped-def]
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    s = size / 256
    d.rounded_rectangle([8 * s, 8 * s, 248 * s, 248 * s], radius=40 * s, fill=(28, 92, 160, 255))
    white = (255, 255, 255, 255)
    d.polygon([(128 * s, 36 * s), (204 * s, 120 * s), (52 * s, 120 * s)], fill=white)  # arrow head
    d.rectangle([104 * s, 116 * s, 152 * s, 176 * s], fill=white)  # arrow shaft
    d.rectangle([48 * s, 196 * s, 208 * s, 220 * s], fill=white)  # the tray it leaves
    return img


def app_icon(kind: str, outdir: Path) -> Path:
    """``icons/datauploader.<kind>`` when the project has one, else a stand-in written to ``outdir``."""
    own = ICONS / ("datauploader.ico" if kind == "ico" else "datauploader-256.png")
    if own.is_file():
        return own
    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / f"datauploader.{kind}"
    img = _draw()
    if kind == "ico":
        img.save(target, format="ICO", sizes=ICO_SIZES)
    else:
        img.save(target, format="PNG")
    return target


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for k in ("png", "ico"):
        sys.stdout.write(f"{app_icon(k, out)}\n")
