"""The journal damaged after a complete upload: truncated, garbage in the middle, a bad header, emptied.

``upload`` and ``status`` must then say so in one line naming the journal file and ``datauploader repair``
(exit 2) and move nothing; ``repair`` rebuilds it (exit 0); the same upload then completes (exit 0) without
overwriting anything on storage: files whose content provably matches are adopted and DataUploader's own
manifest is recognised (issue 9, defect 6). An emptied journal is a valid, empty SQLite file, so it may also
be taken as a fresh start — but never end in "… DataUploader did not write".
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Cli, Result, write_tree
from tests.faults.checks import assert_complete, no_traceback, one_error_line, tail
from tests.faults.trials import SEED

TREE = {f"scan/frame_{i}.raw": os.urandom(3000 + i) for i in range(6)} | {"notes.txt": b"sample LaB6\n"}


def _truncate(p: Path) -> None:
    os.truncate(p, p.stat().st_size // 2)


def _garbage(p: Path) -> None:
    size = p.stat().st_size
    with open(p, "r+b") as fh:
        fh.seek(size // 3)
        fh.write(os.urandom(min(8192, size // 3)))


def _bad_header(p: Path) -> None:
    with open(p, "r+b") as fh:
        fh.write(b"this is not an SQLite file header")


def _empty(p: Path) -> None:
    os.truncate(p, 0)


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "truncated": _truncate,
    "garbage-in-the-middle": _garbage,
    "bad-header": _bad_header,
    "emptied": _empty,
}


def _snapshot(dest: Path) -> dict[str, tuple[bytes, int, int]]:
    """Content, inode and mtime of every data file on storage: a rewrite changes at least one of them."""
    return {
        p.relative_to(dest).as_posix(): (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
        for p in dest.rglob("*")
        if p.is_file() and p.name != "ro-crate-metadata.json"
    }


def _manifest_files(dest: Path) -> dict[str, str]:
    graph = json.loads((dest / "ro-crate-metadata.json").read_text())["@graph"]
    return {e["@id"]: e.get("sha256", "") for e in graph if e.get("@type") == "File"}


def _names_journal_and_repair(r: Result, journal: Path) -> None:
    line = one_error_line(r)
    assert str(journal) in line or journal.name in line, line
    assert "datauploader repair" in line, line


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_damaged_journal(damage: str, cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    cmd = ("upload", str(src), "--dataset", "ds", "--investigation", "p-1", "--meta", "sample=LaB6")
    first = cli(*cmd)
    assert first.code == 0, first.err
    dest = cli.storage / "p-1" / "ds"
    before, manifest = _snapshot(dest), _manifest_files(dest)
    journal = cli.home / "journal.sqlite"
    assert not journal.with_name("journal.sqlite-wal").exists()  # all of it is in the one file we damage
    CORRUPTIONS[damage](journal)
    print(f"journal damaged: {damage} (seed {SEED})")

    up = cli(*cmd)
    if not (damage == "emptied" and up.code == 0):  # emptied may count as a fresh journal; else:
        _names_journal_and_repair(up, journal)
        assert up.code == 2, f"exit {up.code}"
        assert _snapshot(dest) == before, "something moved on storage"
        st = cli("status")
        _names_journal_and_repair(st, journal)
        assert st.code == 2
        fixed = cli("repair")
        no_traceback(fixed.out, fixed.err)
        assert fixed.code == 0, f"repair: exit {fixed.code}:\n{tail(fixed.out + fixed.err)}"
        up = cli(*cmd)
    no_traceback(up.out, up.err)
    assert "did not write" not in up.out + up.err, tail(up.out + up.err)
    assert up.code == 0, f"exit {up.code}:\n{tail(up.out + up.err)}"
    assert _snapshot(dest) == before, "a file on storage was overwritten"
    assert _manifest_files(dest) == manifest
    assert_complete(cli, "ds", dest, src, len(TREE))
