"""Numbers as a scientist reads them in a tooltip or a notification (decimal units, like file managers)."""

from __future__ import annotations

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def _scale(n: float) -> tuple[float, str]:
    i = 0
    while abs(n) >= 1000 and i < len(_UNITS) - 1:
        n /= 1000
        i += 1
    return n, _UNITS[i]


def _fmt(n: float, unit: str) -> str:
    if unit == "B":
        return f"{int(n)} B"
    return f"{n:.1f} {unit}" if n < 100 else f"{n:.0f} {unit}"


def human_bytes(n: float, total: float | None = None) -> str:
    """``1.2 GB``; with ``total``: ``1.2/4.0 GB`` in the total's unit."""
    if total is None:
        return _fmt(*_scale(n))
    t, unit = _scale(total)
    factor = total / t if t else 1
    if unit == "B":
        return f"{int(n)}/{int(total)} B"
    return f"{n / factor:.1f}/{t:.1f} {unit}"


def human_rate(bytes_per_s: float) -> str:
    return human_bytes(bytes_per_s) + "/s"


def human_duration(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    h, rest = divmod(s, 3600)
    return f"{h} h {round(rest / 60)} min" if rest >= 60 else f"{h} h"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
