"""Sizes the issue names: a 200 MiB file and a tree of 2,000 small files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.conftest import Cli


def _sha(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_200_mib_file(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    big = src / "detector.h5"
    with big.open("wb") as fh:
        for _ in range(200):
            fh.write(os.urandom(1 << 20))
    r = cli("upload", str(big), "--dataset", "big")
    assert r.code == 0, r.err
    dest = cli.storage / "big" / "detector.h5"
    assert dest.stat().st_size == 200 << 20
    assert _sha(dest) == _sha(big)


def test_2000_small_files(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for d in range(20):
        folder = src / f"scan_{d:02d}"
        folder.mkdir(parents=True)
        for i in range(100):
            (folder / f"frame_{i:04d}.tif").write_bytes(os.urandom(1024 + i))
    r = cli("upload", str(src), "--dataset", "many")
    assert r.code == 0, r.err
    files = [p for p in (cli.storage / "many").rglob("*.tif")]
    assert len(files) == 2000
    for p in files[::97]:
        assert p.read_bytes() == (src / p.relative_to(cli.storage / "many")).read_bytes()
    d = cli.status()["datasets"][0]
    assert d["files"]["done"] == 2000 and d["state"] == "complete"
