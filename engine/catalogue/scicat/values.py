"""Values as SciCat writes and compares them: ISO times at millisecond precision, archive paths, metadata values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from engine.catalogue.base import MetaValue
from engine.config import is_windows_folder, split_remote

T = TypeVar("T")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def same_time(value: Any, ts: float) -> bool:
    """Whether SciCat's ISO time is ``ts`` at millisecond precision (what :func:`iso` sends)."""
    got = epoch(value)
    return got is not None and abs(got - ts) < 0.001


def chunks(items: Sequence[T], n: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def storage_path(fs: str) -> str:
    """The path part of an rclone path, without remote name, connection parameters or credentials:
    ``/data/x`` → ``/data/x``; ``remote:bucket/x`` → ``/bucket/x``; ``:webdav,url='http://h/':base/x`` →
    ``/base/x``. It is what an archive system can make sense of; the connection string is not."""
    remote, path = split_remote(fs)
    if not remote or is_windows_folder(path):
        return path
    return "/" + path.lstrip("/")


def same_value(have: Any, want: MetaValue) -> bool:
    """A metadata value already holds what we would write. A quantity is compared by value and unit only:
    SciCat adds ``valueSI``/``unitSI`` itself."""
    if isinstance(want, dict):
        return (
            isinstance(have, dict)
            and have.get("value") == want.get("value")
            and have.get("unit") == want.get("unit")
        )
    return type(have) is type(want) and bool(have == want)
