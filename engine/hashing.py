"""Checksums computed at the source.

sha256 is what the catalogue records. When the storage checks copies with a different hash (S3 and SFTP give
MD5 or SHA-1, not SHA-256; a local folder's copies are read back with xxh128), that one is computed in the same
pass so every byte is read once. hashlib releases the GIL on large buffers, so a small thread pool hashes while
rclone transfers.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.winpaths import native

_BUF = 1 << 20
# One read buffer per hashing thread: zeroing a fresh 1 MiB per small file cost more than hashing it.
_buffers = threading.local()


class SourceChanged(Exception):
    """The file changed while it was being read; its checksum would not describe any real version of it."""


@dataclass
class Digest:
    """A file's checksums as it was read, with the size and time that identify that version of it."""

    sha256: str
    alt: str | None
    size: int
    mtime_ns: int


def _hasher(name: str) -> Any:
    """hashlib's ``name``, or xxh128: xxhash's XXH3-128, the hash rclone calls xxh128, for copies on a local folder
    (:mod:`engine.storage`). Imported only there, where it is needed."""
    if name == "xxh128":
        import xxhash

        return xxhash.xxh3_128()
    return hashlib.new(name)


def hash_file(path: Path | str, alt: str | None = None) -> Digest:
    """sha256 (and ``alt``, an hashlib name, when given) of ``path``; :class:`SourceChanged` if it moved."""
    sha = hashlib.sha256()
    other = _hasher(alt) if alt else None
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(_BUF)
    view = memoryview(buf)
    with open(native(path), "rb", buffering=0) as fh:
        before = os.fstat(fh.fileno())
        left = before.st_size
        # Read what fstat promised (no extra read to meet the end); a file that grew meanwhile fails the
        # comparison of the two fstat results below.
        while left > 0:
            n = fh.readinto(buf)
            if not n:
                break
            left -= n
            chunk = view[:n]
            sha.update(chunk)
            if other is not None:
                other.update(chunk)
        after = os.fstat(fh.fileno())
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise SourceChanged(str(path))
    return Digest(
        sha256=sha.hexdigest(),
        alt=other.hexdigest() if other is not None else None,
        size=after.st_size,
        mtime_ns=after.st_mtime_ns,
    )
