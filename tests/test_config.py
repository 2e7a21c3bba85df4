"""Configuration errors: one line, exit code 2, nothing transferred."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cli, write_tree


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "src", {"x.txt": b"x"})


def _fails_with(cli: Cli, src: Path, *needles: str, profile: str | None = None) -> None:
    args = ["upload", str(src), "--dataset", "d"] + (["--profile", profile] if profile else [])
    r = cli(*args)
    assert r.code == 2, (r.out, r.err)
    assert len(r.err.strip().splitlines()) == 1, r.err
    for n in needles:
        assert n in r.err, r.err
    assert not (cli.storage / "d").exists()


def test_bad_toml(cli: Cli, src: Path) -> None:
    cli.write_config("[profiles.default\nstorage = ")
    _fails_with(cli, src, "config.toml", "not valid TOML")


def test_unknown_key_is_named(cli: Cli, src: Path) -> None:
    cli.write_config('[profiles.default]\nstorage = "/tmp/x"\nbwlimt = "10M"\n')
    _fails_with(cli, src, "profiles.default.bwlimt", "unknown key")


def test_unknown_top_level_key(cli: Cli, src: Path) -> None:
    cli.write_config('colour = "blue"\n')
    _fails_with(cli, src, "colour")


def test_wrong_type(cli: Cli, src: Path) -> None:
    cli.write_config('[profiles.default]\nstorage = "/tmp/x"\ntransfers = "eight"\n')
    _fails_with(cli, src, "profiles.default.transfers", "integer")


def test_unknown_catalogue(cli: Cli, src: Path) -> None:
    cli.write_config('[profiles.default]\nstorage = "/tmp/x"\ncatalogue = "icatt"\n')
    _fails_with(cli, src, "catalogue", "icatt")


def test_unknown_profile(cli: Cli, src: Path) -> None:
    _fails_with(cli, src, "no profile 'beamline'", profile="beamline")


def test_unknown_rclone_remote(cli: Cli, src: Path, tmp_path: Path) -> None:
    cli.write_config('[profiles.default]\nstorage = "nosuchremote:bucket/raw"\n')
    _fails_with(cli, src, "storage 'nosuchremote:bucket/raw' is not usable")


def test_storage_is_a_file(cli: Cli, src: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    # json.dumps: a TOML string with the path's backslashes (Windows) escaped.
    cli.write_config(f"[profiles.default]\nstorage = {json.dumps(str(blocker))}\n")
    _fails_with(cli, src, "is not usable")


def test_missing_rclone_config_file(cli: Cli, src: Path) -> None:
    cli.write_config('[profiles.default]\nstorage = "/tmp/x"\nrclone_config = "/nonexistent/rclone.conf"\n')
    _fails_with(cli, src, "rclone_config", "does not exist")


def test_named_profile_with_relative_storage(cli: Cli, src: Path) -> None:
    cli.write_config('[profiles.lab]\nstorage = "elsewhere"\n')
    r = cli("upload", str(src), "--dataset", "d", "--profile", "lab")
    assert r.code == 0, r.err
    assert (cli.home / "elsewhere" / "d" / "x.txt").read_bytes() == b"x"


def test_bad_bwlimit(cli: Cli, src: Path) -> None:
    r = cli("upload", str(src), "--dataset", "d", "--bwlimit", "fast please")
    assert r.code == 2 and "bandwidth limit" in r.err, r.err
    cli.write_config('[profiles.default]\nstorage = "store"\nbwlimit = "08:00,10M 20:00,off"\n')
    r = cli("upload", str(src), "--dataset", "d")
    assert r.code == 0, r.err  # rclone's timetable syntax is accepted


def test_retry_for_must_be_a_duration(cli: Cli, src: Path) -> None:
    cli.write_config('[profiles.default]\nstorage = "store"\nretry_for = "a while"\n')
    _fails_with(cli, src, "retry_for")


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('exclude = "*.tmp"', "'profiles.default.exclude' must be a list"),
        ('ready_markers = [{files = "scan_*.raw"}]', "ready_markers"),
        ('ready_markers = [{files = "a/scan_*.raw", marker = "scan_*.done"}]', "ready marker"),
        ('exclude_defaults = "no"', "exclude_defaults"),
        ("poll = 1", "poll"),
    ],
)
def test_bad_file_rules(cli: Cli, src: Path, line: str, needle: str) -> None:
    cli.write_config(f'[profiles.default]\nstorage = "store"\n{line}\n')
    _fails_with(cli, src, needle)


def test_rules_apply_to_batch_uploads(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "s2", {"keep.dat": b"k", "skip.tmp": b"t", "scratch/x.dat": b"x", "~$lock": b"l"}
    )
    cli.write_config('[profiles.default]\nstorage = "store"\nexclude = ["scratch/"]\n')
    assert cli("upload", str(src), "--dataset", "d").code == 0
    got = sorted(p.name for p in (cli.home / "store" / "d").rglob("*") if p.is_file())
    assert got == ["keep.dat", "ro-crate-metadata.json"]
