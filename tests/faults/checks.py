"""What every fault must leave behind, checked from the outside: the storage, the local catalogue, the output."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from tests.conftest import Cli, Result, assert_uploaded, tree_bytes

PARTIAL_SUFFIXES = (".partial",)


def no_traceback(*texts: str) -> None:
    for text in texts:
        if "Traceback (most recent call last)" in text:
            after = text.split("Traceback (most recent call last)", 1)[1].splitlines()[1:]
            error = next((line for line in after if line and not line[0].isspace()), "?")
            raise AssertionError(f"a traceback was printed: {error}\n{text[-3000:]}")


def tail(text: str, n: int = 12) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def one_error_line(r: Result) -> str:
    """Exactly one line on stderr, ``datauploader: error: …``, and no traceback anywhere; return it."""
    no_traceback(r.out, r.err)
    lines = r.err.splitlines()
    assert len(lines) == 1, f"want one line on stderr, got {len(lines)}:\n{r.err[-3000:]}"
    assert lines[0].startswith("datauploader: error:"), lines[0]
    return lines[0]


def partial_files(root: Path) -> list[str]:
    """Temporary files rclone (or a server) leaves while writing, e.g. ``name.1a2b3c4d.partial``."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(PARTIAL_SUFFIXES))


def catalogue_files(home: Path, dataset: str) -> list[tuple[str, int, str]]:
    """(path, size, sha256) of every file the local catalogue lists for ``dataset``, with repeats."""
    db = sqlite3.connect(f"file:{home / 'catalogue.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT f.path, f.size, f.sha256 FROM files f JOIN datasets d ON d.pid = f.dataset_pid "
            "WHERE d.name = ? ORDER BY f.path",
            (dataset,),
        ).fetchall()
        (n_sets,) = db.execute("SELECT count(*) FROM datasets WHERE name = ?", (dataset,)).fetchone()
    finally:
        db.close()
    assert n_sets == 1, f"dataset {dataset!r} is in the catalogue {n_sets} times"
    return [(str(p), int(s), str(h)) for p, s, h in rows]


def registered_count(home: Path, dataset: str) -> int:
    """How many files the local catalogue lists for ``dataset`` right now (0 while it does not exist yet)."""
    path = home / "catalogue.sqlite"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            (n,) = db.execute(
                "SELECT count(*) FROM files f JOIN datasets d ON d.pid = f.dataset_pid WHERE d.name = ?",
                (dataset,),
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0
    return int(n)


def assert_registered_once(home: Path, dataset: str, src: Path) -> None:
    """Every source file is in the local catalogue exactly once, with its size and sha256; nothing else is."""
    rows = catalogue_files(home, dataset)
    want = sorted((rel, len(data), hashlib.sha256(data).hexdigest()) for rel, data in tree_bytes(src).items())
    assert sorted(rows) == want


def assert_complete(cli: Cli, dataset: str, dest: Path, src: Path, n_files: int) -> None:
    """The whole promise after a fault and a re-run: storage == source byte for byte plus the manifest, nothing
    temporary left on storage or in the home (what a killed run was working with is deleted by the next one),
    every file registered once, and the journal saying complete."""
    assert not partial_files(dest), partial_files(dest)
    left = [p.name for pattern in ("scratch-*", "files-*.lst", "tmp*") for p in cli.home.rglob(pattern)]
    assert not left, f"scratch left in the home: {left}"
    assert_uploaded(dest, src)
    assert_registered_once(cli.home, dataset, src)
    sets = [d for d in cli.status()["datasets"] if d["name"] == dataset]
    assert len(sets) == 1
    d = sets[0]
    assert d["state"] == "complete", d
    assert d["files"]["total"] == n_files and d["files"]["done"] == n_files, d["files"]
