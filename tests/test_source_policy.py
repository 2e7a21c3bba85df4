"""What is not a plain file at the source (issue 9, defects 2, 3 and 10): never a traceback, never in silence.

Links to files are followed; links to folders, dangling links, link loops, FIFOs and sockets are skipped and
listed; names that are not UTF-8 or hold control characters are refused per file while the rest goes on.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.conftest import Cli, tree_bytes

pytestmark = pytest.mark.skipif(os.name == "nt", reason="FIFOs, sockets and byte file names are POSIX")


def _odd_tree(root: Path) -> Path:
    root.mkdir()
    (root / "plain.dat").write_bytes(b"plain")
    (root / "sub").mkdir()
    (root / "sub" / "deep.dat").write_bytes(b"deep")
    os.close(os.open(os.fsencode(root) + b"/bad\xff.dat", os.O_CREAT | os.O_WRONLY, 0o644))
    for name in ("new\nline.dat", "tab\tname.dat", "cr\rname.dat"):
        (root / name).write_bytes(b"odd")
    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    sock.close()
    outside = root.parent / "outside.dat"
    outside.write_bytes(b"linked content")
    (root / "link.dat").symlink_to(outside)
    (root / "dangling").symlink_to(root.parent / "does-not-exist")
    (root / "loop").symlink_to(root / "loop")
    (root / "folder-link").symlink_to(root / "sub")
    return root


def test_batch_upload_of_odd_entries(cli: Cli, tmp_path: Path) -> None:
    src = _odd_tree(tmp_path / "src")
    r = cli("upload", str(src), "--dataset", "ds", timeout=120)
    assert r.code == 1, (r.out, r.err)
    assert "Traceback" not in r.out + r.err
    dest = cli.storage / "ds"
    got = tree_bytes(dest)
    got.pop("ro-crate-metadata.json", None)
    assert got == {"plain.dat": b"plain", "sub/deep.dat": b"deep", "link.dat": b"linked content"}
    failed = sorted(line.split(":")[0] for line in r.out.splitlines() if line.startswith("FAILED "))
    assert failed == [
        "FAILED bad\\xff.dat",
        "FAILED cr\\rname.dat",
        "FAILED new\\nline.dat",
        "FAILED tab\\tname.dat",
    ]
    assert "4 files failed" in r.out
    skipped = {
        line.split(":")[0][len("SKIPPED ") :] for line in r.out.splitlines() if line.startswith("SKIPPED ")
    }
    assert skipped == {"pipe", "sock", "dangling", "loop", "folder-link"}
    d = cli.status()["datasets"][0]
    assert d["state"] == "failed" and d["files"]["done"] == 3
    # Renaming the refused files and running again finishes the dataset.
    for name in (b"bad\xff.dat", b"new\nline.dat", b"tab\tname.dat", b"cr\rname.dat"):
        os.rename(os.fsencode(src) + b"/" + name, os.fsencode(src) + b"/renamed-" + str(len(name)).encode())
    r = cli("upload", str(src), "--dataset", "ds", timeout=120)
    assert r.code == 0, (r.out, r.err)
    assert cli.status()["datasets"][0]["state"] == "complete"


def test_empty_source_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = cli("upload", str(tmp_path / "empty"), "--dataset", "ds")
    assert r.code == 2 and "nothing to upload" in r.err, (r.out, r.err)
    assert len(r.err.strip().splitlines()) == 1
    assert cli.status()["datasets"] == []


def test_names_windows_like_storage_cannot_store_are_refused_per_file(tmp_path: Path) -> None:
    """Issue 13: storage under Windows' name rules (a Windows folder, SMB) refuses `a:b`, `CON.txt`, `dot.` per file,
    with a reason; the rest of the scan goes on. Pure, so it runs on Linux too."""
    from engine.sources import Skipped, resolve_roots, scan
    from engine.winpaths import relative_path_problem

    src = tmp_path / "src"
    src.mkdir()
    for name in ("fine.dat", "a:b.dat", "CON.txt", "dot.", "sub"):
        (src / name).write_bytes(b"x") if name != "sub" else (src / name).mkdir()
    (src / "sub" / "aux").write_bytes(b"x")
    skipped: list[Skipped] = []
    found = [
        f.rel for f in scan(resolve_roots([str(src)]), on_skip=skipped.append, refuse=relative_path_problem)
    ]
    assert found == ["fine.dat"]
    assert sorted(s.rel for s in skipped if s.refused) == ["CON.txt", "a:b.dat", "dot.", "sub/aux"]
