"""A damaged journal (issue 9, defect 6): one clear line and exit 2, then `repair`, then the same command finishes
without overwriting anything on the storage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Cli, assert_uploaded, write_tree


def _damage(journal: Path, how: str) -> None:
    data = journal.read_bytes()
    if how == "truncated":
        journal.write_bytes(data[: len(data) // 3])
    elif how == "garbage":
        third = len(data) // 3
        journal.write_bytes(data[:third] + os.urandom(third) + data[2 * third :])
    elif how == "header":
        journal.write_bytes(b"this is no journal" + data[18:])
    elif how == "emptied":
        journal.write_bytes(b"")


def _stored(dest: Path) -> dict[str, int]:
    return {p.relative_to(dest).as_posix(): p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}


@pytest.mark.parametrize("how", ["truncated", "garbage", "header", "emptied"])
def test_damaged_journal_is_reported_then_repaired(cli: Cli, tmp_path: Path, how: str) -> None:
    src = write_tree(tmp_path / "src", {f"d{i % 4}/f{i}.dat": os.urandom(5000 + i) for i in range(60)})
    assert cli("upload", str(src), "--dataset", "ds", "--investigation", "inv").code == 0
    dest = cli.storage / "inv" / "ds"
    before = _stored(dest)
    journal = cli.home / "journal.sqlite"
    assert not Path(f"{journal}-wal").exists() or Path(f"{journal}-wal").stat().st_size == 0
    _damage(journal, how)
    if how != "emptied":  # an emptied file is a valid, empty database: nothing to report, repair rebuilds
        for args in (("upload", str(src), "--dataset", "ds", "--investigation", "inv"), ("status",)):
            r = cli(*args)
            assert r.code == 2, (args, r.out, r.err)
            lines = r.err.strip().splitlines()
            assert len(lines) == 1 and str(journal) in lines[0] and "datauploader repair" in lines[0], r.err
            assert "Traceback" not in r.err
    r = cli("repair")
    assert r.code == 0, (r.out, r.err)
    if how != "emptied":
        assert "moved to" in r.out and list(cli.home.glob("journal.sqlite.damaged-*"))
    r = cli("upload", str(src), "--dataset", "ds", "--investigation", "inv")
    assert r.code == 0, (r.out, r.err)
    assert "did not write" not in r.out
    assert_uploaded(dest, src)
    after = _stored(dest)
    data_files = {k: v for k, v in before.items() if k != "ro-crate-metadata.json"}
    assert {k: after[k] for k in data_files} == data_files, "a stored file was rewritten"
    d = cli.status()["datasets"][0]
    assert d["state"] == "complete" and d["files"]["done"] == 60


def test_lost_journal_on_webdav_adopts_files_proven_identical_by_reading_them_back(
    cli: Cli, tmp_path: Path
) -> None:
    """WebDAV keeps no hash: after a lost journal the files on it are read back and compared (sha256) before they
    are adopted; a file that differs is refused, never overwritten."""
    from tests.servers import RcloneWebdav, write_config

    src = write_tree(tmp_path / "src", {f"f{i}.dat": os.urandom(20_000) for i in range(12)})
    with RcloneWebdav(tmp_path / "srv") as srv:
        write_config(cli.home, {"default": srv.profile("raw")})
        assert cli("upload", str(src), "--dataset", "ds").code == 0
        (cli.home / "journal.sqlite").write_bytes(b"")
        foreign = srv.disk("raw", "ds", "f3.dat")
        foreign.write_bytes(os.urandom(20_000))  # same size, other content: someone else's file now
        r = cli("upload", str(src), "--dataset", "ds")
        assert r.code == 1, (r.out, r.err)
        failed = [line for line in r.out.splitlines() if line.startswith("FAILED ")]
        assert len(failed) == 1 and failed[0].startswith("FAILED f3.dat:") and "did not write" in failed[0]
        assert foreign.read_bytes() != (src / "f3.dat").read_bytes()
        for i in range(12):
            if i != 3:
                assert srv.disk("raw", "ds", f"f{i}.dat").read_bytes() == (src / f"f{i}.dat").read_bytes()


def test_repair_finds_datasets_uploaded_with_storage_outside_the_profile(cli: Cli, tmp_path: Path) -> None:
    """A lost journal: the local catalogue still knows a dataset that `--storage` sent elsewhere. Repair brings it
    back with that storage, so `status` and `verify` see it and the same command finds it again."""
    src = write_tree(tmp_path / "src", {f"f{i}.dat": os.urandom(3000 + i) for i in range(8)})
    elsewhere = tmp_path / "elsewhere"
    args = ("upload", str(src), "--dataset", "ds", "--investigation", "inv", "--storage", str(elsewhere))
    assert cli(*args).code == 0
    assert cli("upload", str(src), "--dataset", "home-ds").code == 0  # in the profile's storage
    before = _stored(elsewhere / "inv" / "ds")
    (cli.home / "journal.sqlite").write_bytes(b"")
    r = cli("repair")
    assert r.code == 0, (r.out, r.err)
    sets = {d["name"]: d for d in cli.status()["datasets"]}
    assert set(sets) == {"ds", "home-ds"}, sets
    assert sets["ds"]["location"] == str(elsewhere / "inv" / "ds"), sets["ds"]
    r = cli(*args)
    assert r.code == 0, (r.out, r.err)
    assert "did not write" not in r.out
    after = _stored(elsewhere / "inv" / "ds")
    assert {k: after[k] for k in before if k != "ro-crate-metadata.json"} == {
        k: v for k, v in before.items() if k != "ro-crate-metadata.json"
    }, "a stored file was rewritten"
    assert {d["name"]: d for d in cli.status()["datasets"]}["ds"]["files"]["done"] == 8
    r = cli("verify", "--dataset", "ds")
    assert r.code == 0 and "8 files" in r.out, (r.out, r.err)
