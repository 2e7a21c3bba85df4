"""The storage misbehaving (issue 9, defects 7, 8, 11, 12, 13): full, read-only, away at the start, changed behind
our back — and the data home private to its user."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import xxhash

from engine.uploader import PassOutcome
from tests.conftest import Cli, ensure_stopped, posix_signals, wait_for, write_tree
from tests.servers import RcloneWebdav, WsgiDav, write_config

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


needs_root = pytest.mark.skipif(not ROOT, reason="mounting a small tmpfs needs root (CI runs as root)")


@needs_root
def test_storage_full_fails_at_once_in_batch_mode(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {f"f{i}.bin": os.urandom(400_000) for i in range(8)})
    with tmpfs(tmp_path / "small", "1m") as small:
        cli.write_config(f"[profiles.default]\nstorage = {json.dumps(str(small))}\n")
        t = time.monotonic()
        r = cli("upload", str(src), "--dataset", "ds")
        took = time.monotonic() - t
        assert r.code == 1, (r.out, r.err)
        assert took < 20, f"storage full was retried ({took:.0f} s)"
        failed = [line for line in r.out.splitlines() if line.startswith("FAILED ")]
        assert failed and all("storage is full" in line for line in failed), r.out
        for p in (small / "ds").glob("*"):  # what is there is whole, never a partial file under a final name
            assert p.read_bytes() == (src / p.name).read_bytes()


@needs_root
def test_storage_full_makes_sync_wait_until_there_is_room(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {f"f{i}.bin": os.urandom(400_000) for i in range(6)})
    with tmpfs(tmp_path / "small", "1m") as small:
        cli.write_config(f"[profiles.default]\nstorage = {json.dumps(str(small))}\n")
        proc = cli.popen("sync", str(src), "--dataset", "ds", "--settle", "0.2")
        try:
            wait_for(lambda: bool(cli.status()["datasets"]) and (small / "ds").exists(), 30, "sync to start")
            time.sleep(4)
            d = cli.status()["datasets"][0]
            assert d["files"]["failed"] == 0, d  # waiting, not failing
            subprocess.run(["mount", "-o", "remount,size=20m", str(small)], check=True)
            wait_for(
                lambda: len(list((small / "ds").glob("f*.bin"))) == 6, 60, "all files after room was made"
            )
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            ensure_stopped(proc)
        assert proc.returncode == 0, (out, err)
        assert "storage full" in err or "storage is full" in err
        for i in range(6):
            assert (small / "ds" / f"f{i}.bin").read_bytes() == (src / f"f{i}.bin").read_bytes()


@needs_root
def test_read_only_storage_fails_at_once_naming_the_cause(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {f"f{i}.bin": os.urandom(1000) for i in range(5)})
    with tmpfs(tmp_path / "ro", "4m") as ro:
        (ro / "ds").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        cli.write_config(f"[profiles.default]\nstorage = {json.dumps(str(ro))}\n")
        t = time.monotonic()
        r = cli("upload", str(src), "--dataset", "ds")
        assert r.code == 1, (r.out, r.err)
        assert time.monotonic() - t < 20, "a permanent error was retried"
        failed = [line for line in r.out.splitlines() if line.startswith("FAILED ")]
        assert len(failed) == 5 and all("cannot write" in line or "refused" in line for line in failed), r.out


def test_retry_warnings_name_files_and_cause() -> None:
    outcome = PassOutcome(
        reachable=False, retries=[(f"f{i}", "the storage was not reachable (x)") for i in range(5)]
    )
    text = outcome.describe()
    assert "f0, f1, f2 and 2 more" in text and "not reachable" in text and "5 file(s)" in text


@posix_signals
def test_unreachable_storage_at_start(cli: Cli, tmp_path: Path) -> None:
    """upload waits a bounded time then exits 1; sync waits until the storage is there, then uploads."""
    src = write_tree(tmp_path / "src", {"a.dat": b"a", "b.dat": b"b"})
    srv = RcloneWebdav(tmp_path / "srv").configure()
    write_config(cli.home, {"default": {**srv.profile("raw"), "wait_for_storage": "3s"}})
    t = time.monotonic()
    r = cli("upload", str(src), "--dataset", "ds")
    assert r.code == 1 and "not reachable" in r.err and "wait_for_storage" in r.err, (r.out, r.err)
    assert 2.5 < time.monotonic() - t < 30
    proc = cli.popen("sync", str(src), "--dataset", "ds2", "--settle", "0.2")
    try:
        time.sleep(4)
        assert proc.poll() is None, proc.communicate()
        with srv:
            wait_for(lambda: srv.disk("raw", "ds2", "b.dat").exists(), 60, "upload once the storage is up")
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
    finally:
        ensure_stopped(proc)
    assert proc.returncode == 0, (out, err)


def test_verify_finds_stored_files_changed_behind_our_back(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {f"f{i}.dat": os.urandom(3000) for i in range(6)})
    assert cli("upload", str(src), "--dataset", "ds").code == 0
    assert cli("verify").code == 0
    dest = cli.storage / "ds"
    (dest / "f1.dat").write_bytes(os.urandom(3000))  # same size, other content
    (dest / "f2.dat").unlink()
    r = cli("verify", "--dataset", "ds")
    assert r.code == 1, (r.out, r.err)
    different = sorted(line.split(":")[0] for line in r.out.splitlines() if line.startswith("DIFFERENT "))
    assert different == ["DIFFERENT f1.dat", "DIFFERENT f2.dat"], r.out
    assert cli("verify", "--dataset", "nope").code == 2


def test_verify_checks_the_storage_a_run_named_with_storage(cli: Cli, tmp_path: Path) -> None:
    """`upload --storage FOLDER` puts the dataset outside the profile's storage; verify looks there too (it used
    to look in the profile's storage and call every file missing)."""
    src = write_tree(tmp_path / "src", {f"f{i}.dat": os.urandom(3000) for i in range(3)})
    elsewhere = tmp_path / "elsewhere"
    assert cli("upload", str(src), "--dataset", "ds", "--storage", str(elsewhere)).code == 0
    r = cli("verify", "--dataset", "ds")
    assert r.code == 0 and "OK" in r.out and str(elsewhere) in r.out, (r.out, r.err)
    (elsewhere / "ds" / "f0.dat").unlink()
    r = cli("verify", "--dataset", "ds")
    assert r.code == 1 and "DIFFERENT f0.dat: missing on the storage" in r.out, (r.out, r.err)


def test_verify_on_webdav_uses_size_and_time_or_reads_back(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {f"f{i}.dat": os.urandom(3000) for i in range(4)})
    with WsgiDav(tmp_path / "srv") as srv:  # not rclone's server: its directory cache would hide the change
        write_config(cli.home, {"default": srv.profile("raw")})
        assert cli("upload", str(src), "--dataset", "ds").code == 0
        assert cli("verify").code == 0
        stored = srv.disk("raw", "ds", "f0.dat")
        time.sleep(2)  # WebDAV keeps whole seconds
        stored.write_bytes(os.urandom(3000))
        r = cli("verify")
        assert r.code == 1 and "DIFFERENT f0.dat" in r.out and "size and time" in r.out, r.out
        os.utime(
            stored, (time.time() - 3600,) * 2
        )  # hide it from the time check: reading back still finds it
        r = cli("verify", "--download")
        assert r.code == 1 and "DIFFERENT f0.dat" in r.out and "read back" in r.out, r.out


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_data_home_is_private(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a.dat": b"a"})
    assert cli("upload", str(src), "--dataset", "ds").code == 0
    assert stat.S_IMODE(cli.home.stat().st_mode) == 0o700
    for name in ("journal.sqlite", "catalogue.sqlite", "logs/datauploader.log"):
        assert stat.S_IMODE((cli.home / name).stat().st_mode) == 0o600, name


def _stored(cli: Cli, dataset: str) -> dict[str, tuple[str, str]]:
    """(verify, stored_hash) of every file of ``dataset`` in the journal, by path."""
    with sqlite3.connect(cli.home / "journal.sqlite") as db:
        rows = db.execute(
            "SELECT f.rel, f.verify, f.stored_hash FROM files f JOIN datasets d ON d.id = f.dataset_id "
            "WHERE d.name = ?",
            (dataset,),
        )
        return {rel: (v, h) for rel, v, h in rows}


def test_local_copies_are_read_back_with_xxh128_or_with_sha256_when_the_profile_asks(
    cli: Cli, tmp_path: Path
) -> None:
    files = {f"f{i}.dat": os.urandom(5000 + i) for i in range(3)}
    src = write_tree(tmp_path / "src", files)
    assert cli("upload", str(src), "--dataset", "fast").code == 0
    xxh = {rel: ("xxh128", f"xxh128:{xxhash.xxh3_128(data).hexdigest()}") for rel, data in files.items()}
    assert _stored(cli, "fast") == xxh
    cli.write_config('[profiles.default]\nstorage = "storage"\nlocal_verify = "sha256"\n')
    assert cli("upload", str(src), "--dataset", "strict").code == 0
    sha = {rel: ("sha256", f"sha256:{hashlib.sha256(data).hexdigest()}") for rel, data in files.items()}
    assert _stored(cli, "strict") == sha
    r = cli("verify")
    assert r.code == 0 and "xxh128" in r.out and "sha256" in r.out, (r.out, r.err)
    cli.write_config('[profiles.default]\nstorage = "storage"\nlocal_verify = "md5"\n')
    r = cli("upload", str(src), "--dataset", "x")
    assert r.code == 2 and "local_verify" in r.err and '"xxh128" or "sha256"' in r.err, r.err


def test_copies_read_back_with_sha256_by_an_earlier_release_are_still_ours(cli: Cli, tmp_path: Path) -> None:
    """A journal whose local copies were verified with sha256 (the release before xxh128): verify checks them with
    sha256, and a source changed to the same size is uploaded again over our own copy, not refused as foreign."""
    files = {f"f{i}.dat": os.urandom(4000) for i in range(3)}
    src = write_tree(tmp_path / "src", files)
    cli.write_config('[profiles.default]\nstorage = "storage"\nlocal_verify = "sha256"\n')
    assert cli("upload", str(src), "--dataset", "ds").code == 0
    cli.write_config('[profiles.default]\nstorage = "storage"\n')  # now the default, xxh128
    r = cli("verify")
    assert r.code == 0 and "sha256" in r.out, (r.out, r.err)
    new = os.urandom(4000)
    (src / "f1.dat").write_bytes(new)  # same size, new content
    r = cli("upload", str(src), "--dataset", "ds")
    assert r.code == 0, (r.out, r.err)
    assert (cli.storage / "ds" / "f1.dat").read_bytes() == new
    stored = _stored(cli, "ds")
    assert stored["f1.dat"] == ("xxh128", f"xxh128:{xxhash.xxh3_128(new).hexdigest()}")
    assert stored["f0.dat"][0] == "sha256"
    (cli.storage / "ds" / "f0.dat").write_bytes(os.urandom(4000))  # changed behind our back
    r = cli("verify")
    assert r.code == 1 and "DIFFERENT f0.dat" in r.out and "sha256 checksum" in r.out, (r.out, r.err)
