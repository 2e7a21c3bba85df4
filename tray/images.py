"""The tray's images: the state icons drawn by ``icons/make_icons.py``, read as package data.

Read through ``importlib.resources`` so a wheel finds them in the ``datauploader_icons`` package; a frozen app
built from ``tray.spec`` carries the folder as ``icons/`` next to the executable, and a source checkout has
it at the repository root, so both are tried when the package is not importable.
"""

from __future__ import annotations

import functools
import sys
from enum import Enum
from importlib import resources
from pathlib import Path

from PIL import Image

SIZES = (16, 22, 24, 32, 48, 64, 128, 256)


class IconState(str, Enum):
    """What the tray icon says at a glance; each has its own badge shape (see icons/make_icons.py)."""

    IDLE = "idle"  # nothing running
    SYNCING = "syncing"  # syncs running, everything written so far is done
    UPLOADING = "uploading"  # files moving
    PAUSED = "paused"
    ATTENTION = "attention"  # a permanent failure, a login expired, storage or catalogue away


def _read(name: str) -> bytes:
    try:
        return resources.files("datauploader_icons").joinpath(name).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    roots = [Path(__file__).resolve().parent.parent / "icons"]
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        roots.insert(0, Path(frozen) / "icons")
    for root in roots:
        if (root / name).is_file():
            return (root / name).read_bytes()
    raise FileNotFoundError(f"icon {name} not found (is the datauploader_icons package installed?)")


def icon_file_name(state: IconState | None, size: int = 64, ext: str = "png") -> str:
    stem = "datauploader" if state is None else f"state-{state.value}"
    return f"{stem}.ico" if ext == "ico" else f"{stem}-{size}.{ext}"


@functools.cache
def icon_image(state: IconState | None, size: int = 64) -> Image.Image:
    """The PIL image for ``state`` (None: the app icon) at the nearest stored size at or above ``size``."""
    best = next((s for s in SIZES if s >= size), SIZES[-1])
    import io

    img = Image.open(io.BytesIO(_read(icon_file_name(state, best))))
    img.load()
    return img if best == size else img.resize((size, size), Image.Resampling.LANCZOS)


def icon_bytes(state: IconState | None, ext: str = "ico") -> bytes:
    """The raw file, e.g. the multi-size ICO a Windows notification wants."""
    return _read(icon_file_name(state, ext=ext))
