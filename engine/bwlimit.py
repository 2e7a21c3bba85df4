"""Bandwidth limits in rclone's syntax, applied to the shared daemon while it runs.

rclone's ``core/bwlimit`` takes one rate, not a timetable, and the daemon is shared by every dataset of the engine,
so a timetable (``"08:00,10M 20:00,off"``, ``"Mon-08:00,512k Sat-00:00,off"``) is followed here: the rate of the
latest entry that has begun (wrapping around the day, or the week when entries name days) is applied, and again
whenever the next entry begins.
"""

from __future__ import annotations

import datetime as dt
import re

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# rclone's --bwlimit: "off", "10M", "10M:1M" (upload:download), or a timetable "08:00,10M 20:00,off",
# "Mon-08:00,512k Sat-00:00,off"; rclone itself has the last word when the limit is applied.
_RATE = r"(?:off|\d+(?:\.\d+)?[bBkKMGTP]?i?(?::\d+(?:\.\d+)?[bBkKMGTP]?i?)?)"
# Pattern texts, compiled (and cached by ``re``) when a limit is first checked: compiling them cost ~5 ms of
# every start-up, and most profiles set no limit.
_SYNTAX = rf"^{_RATE}$|^(?:(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)-)?(?:[01]?\d|2[0-3]):[0-5]\d,{_RATE}\s*)+$"


def valid(limit: str) -> bool:
    """Whether ``limit`` is rclone's bandwidth-limit syntax (a rate, or a timetable of rates)."""
    return bool(re.match(_SYNTAX, limit.strip(), re.IGNORECASE))


_ENTRY = r"^(?:(?P<day>[A-Za-z]{3})-)?(?P<h>\d{1,2}):(?P<m>\d\d),(?P<rate>\S+)$"


def timetable(limit: str) -> list[tuple[int | None, int, str]] | None:
    """``[(weekday or None, minute of the day, rate)]`` for a timetable, None for a single rate."""
    parts = limit.split()
    entries = []
    for part in parts:
        m = re.match(_ENTRY, part)
        if m is None:
            return None if len(parts) == 1 else []
        day = m.group("day")
        weekday = _DAYS.index(day.lower()) if day and day.lower() in _DAYS else None
        entries.append((weekday, int(m.group("h")) * 60 + int(m.group("m")), m.group("rate")))
    return entries


def rate_now(limit: str, now: dt.datetime | None = None) -> str:
    """The single rate ``limit`` asks for at ``now``."""
    entries = timetable(limit)
    if entries is None:
        return limit
    if not entries:
        return "off"
    now = now or dt.datetime.now()
    weekly = any(day is not None for day, _, _ in entries)
    here = now.weekday() * 1440 + now.hour * 60 + now.minute if weekly else now.hour * 60 + now.minute
    keyed = sorted(((day or 0) * 1440 + minute if weekly else minute, rate) for day, minute, rate in entries)
    current = keyed[-1][1]  # before the first entry of the period: the last one of the previous period
    for start, rate in keyed:
        if start <= here:
            current = rate
    return current
