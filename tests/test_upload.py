"""Batch upload on the embedded default, through the real CLI, the real rclone and the local catalogue."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

from rocrate.rocrate import ROCrate

from tests.conftest import Cli, tree_bytes, write_tree

TREE = {
    "a.bin": os.urandom(100_000),
    "empty.dat": b"",
    "sub dir/ü/ñ file.txt": "grüße\n".encode(),
    "deep/er/still/x.raw": os.urandom(3000),
    "deep/er/y y.raw": os.urandom(10),
}


def _upload(cli: Cli, *args: str) -> None:
    r = cli("upload", *args)
    assert r.code == 0, (r.out, r.err)


def test_nested_unicode_empty_files_land_verified_and_registered(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    r = cli("upload", str(src), "--dataset", "run 1", "--investigation", "p-123", "--meta", "sample=LaB6")
    assert r.code == 0, r.err
    dest = cli.storage / "p-123" / "run 1"
    got = tree_bytes(dest)
    manifest = got.pop("ro-crate-metadata.json")
    assert got == TREE
    assert json.loads(manifest)["@context"]
    status = cli.status()["datasets"][0]
    assert status["state"] == "complete"
    assert status["files"] == {
        "total": 5,
        "done": 5,
        "failed": 0,
        "pending": 0,
        "by_state": {"registered": 5},
    }
    # The local catalogue has every file with its sha256.
    db = sqlite3.connect(cli.home / "catalogue.sqlite")
    rows = dict(db.execute("SELECT path, sha256 FROM files").fetchall())
    assert rows == {k: hashlib.sha256(v).hexdigest() for k, v in TREE.items()}
    meta = db.execute("SELECT investigation, name, meta, complete FROM datasets").fetchone()
    assert meta == ("p-123", "run 1", '{"sample": "LaB6"}', 1)


def test_rocrate_lists_exactly_the_files_with_size_and_sha256(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    _upload(cli, str(src), "--dataset", "ds", "--description", "powder scan")
    crate = ROCrate(str(cli.storage / "ds"))
    assert crate.root_dataset["name"] == "ds"
    assert crate.root_dataset["description"] == "powder scan"
    files = {}
    for entity in crate.data_entities:
        assert entity.type == "File"
        assert entity["name"] not in files, "listed twice"
        files[entity["name"]] = (int(entity["contentSize"]), entity["sha256"])
    assert files == {k: (len(v), hashlib.sha256(v).hexdigest()) for k, v in TREE.items()}
    # ids are proper relative URIs that resolve to the files on storage
    for entity in crate.data_entities:
        assert (cli.storage / "ds" / entity["name"]).is_file()


def test_file_arguments_land_at_dataset_root(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"one/a.txt": b"a", "two/b.txt": b"b", "c/d/e.txt": b"e"})
    _upload(cli, str(src / "one" / "a.txt"), str(src / "two" / "b.txt"), str(src / "c"), "--dataset", "mix")
    got = tree_bytes(cli.storage / "mix")
    got.pop("ro-crate-metadata.json")
    assert got == {"a.txt": b"a", "b.txt": b"b", "d/e.txt": b"e"}


def test_colliding_arguments_exit_2_before_anything_moves(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"one/x.txt": b"1", "two/x.txt": b"2", "two/y.txt": b"y"})
    r = cli("upload", str(src / "one"), str(src / "two"), "--dataset", "clash")
    assert r.code == 2
    assert "x.txt" in r.err and "would come from both" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (cli.storage / "clash").exists()
    assert cli.status()["datasets"] == []


def test_missing_path_exit_2_nothing_uploaded(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"x.txt": b"1"})
    r = cli("upload", str(src), str(tmp_path / "nope"), "--dataset", "d")
    assert r.code == 2
    assert "nope" in r.err and "no such file" in r.err
    assert not cli.storage.exists() or not any(cli.storage.iterdir())


def test_bad_names_are_refused(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"x.txt": b"1"})
    for bad in ("a/b", "..", "x\\y", "tab\there", "ev..il"):
        r = cli("upload", str(src), "--dataset", bad)
        assert r.code == 2, bad
        assert r.err.startswith("datauploader: error: dataset name"), r.err
    r = cli("upload", str(src), "--dataset", "ok", "--investigation", "../up")
    assert r.code == 2 and "investigation name" in r.err
    r = cli("upload", str(src), "--dataset", "ok", "--meta", "novalue")
    assert r.code == 2 and "KEY=VALUE" in r.err


def test_rerun_is_a_noop(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    _upload(cli, str(src), "--dataset", "d")
    dest = cli.storage / "d"
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*")}
    r = cli("upload", str(src), "--dataset", "d")
    assert r.code == 0
    assert "0 uploaded now" in r.out
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*")} == before


def test_changed_file_is_uploaded_again_and_catalogue_updated(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    _upload(cli, str(src), "--dataset", "d")
    with open(src / "a.bin", "ab") as fh:  # acquisition software appends
        fh.write(b"more data")
    r = cli("upload", str(src), "--dataset", "d")
    assert r.code == 0, r.err
    assert "1 uploaded now" in r.out
    new = (src / "a.bin").read_bytes()
    assert (cli.storage / "d" / "a.bin").read_bytes() == new
    db = sqlite3.connect(cli.home / "catalogue.sqlite")
    (sha, size) = db.execute("SELECT sha256, size FROM files WHERE path='a.bin'").fetchone()
    assert (sha, size) == (hashlib.sha256(new).hexdigest(), len(new))
    crate = json.loads((cli.storage / "d" / "ro-crate-metadata.json").read_text())
    entry = next(e for e in crate["@graph"] if e.get("name") == "a.bin")
    assert entry["sha256"] == hashlib.sha256(new).hexdigest()


def test_foreign_content_at_target_is_refused_not_replaced(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a.txt": b"ours", "b.txt": b"also ours"})
    foreign = cli.storage / "d" / "a.txt"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"somebody else's data")
    r = cli("upload", str(src), "--dataset", "d")
    assert r.code == 1
    assert "a.txt" in r.out and "not replaced" in r.out
    assert foreign.read_bytes() == b"somebody else's data"
    assert (cli.storage / "d" / "b.txt").read_bytes() == b"also ours"
    status = cli.status()["datasets"][0]
    assert status["state"] == "failed"
    assert status["failures"][0]["path"] == "a.txt"
    # Still refused on the next run; once the user moves it away, the upload completes.
    assert cli("upload", str(src), "--dataset", "d").code == 1
    foreign.unlink()
    assert cli("upload", str(src), "--dataset", "d").code == 0
    assert foreign.read_bytes() == b"ours"


def test_modified_on_storage_after_upload_is_not_overwritten(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a.txt": b"v1"})
    _upload(cli, str(src), "--dataset", "d")
    (cli.storage / "d" / "a.txt").write_bytes(b"edited on storage by a colleague")
    (src / "a.txt").write_bytes(b"v2 from the instrument")
    r = cli("upload", str(src), "--dataset", "d")
    assert r.code == 1 and "not replaced" in r.out
    assert (cli.storage / "d" / "a.txt").read_bytes() == b"edited on storage by a colleague"


def test_version_and_console_script(cli: Cli) -> None:
    r = cli("--version")
    assert r.code == 0 and r.out.startswith("datauploader ")


def test_manifest_license_description_and_path_order(cli: Cli, tmp_path: Path) -> None:
    """Issue 14: the RO-Crate names the profile's license, describes the dataset when the user did not, lists
    files in path order and keeps metadata types."""
    src = write_tree(tmp_path / "src", {name: b"x" for name in ("b/2.dat", "a.dat", "c.dat", "b/1.dat")})
    cli.write_config('[profiles.default]\nstorage = "storage"\nlicense = "CC-BY-4.0"\n')
    r = cli("upload", str(src), "--dataset", "ds", "--meta", "temperature = 300 K", "--meta", "frames=12")
    assert r.code == 0, r.err
    crate = json.loads((cli.storage / "ds" / "ro-crate-metadata.json").read_text())
    root = next(e for e in crate["@graph"] if e["@id"] == "./")
    assert root["license"] == {"@id": "https://spdx.org/licenses/CC-BY-4.0"}
    assert "ds" in root["description"] and "DataUploader" in root["description"]
    files = [e["name"] for e in crate["@graph"] if e.get("@type") == "File"]
    assert files == ["a.dat", "b/1.dat", "b/2.dat", "c.dat"]
    props = {e["name"]: e for e in crate["@graph"] if e.get("@type") == "PropertyValue"}
    assert props["temperature"]["value"] == 300 and props["temperature"]["unitText"] == "K"
    assert props["frames"]["value"] == 12


def test_rclone_starts_once_while_the_engine_loads(cli: Cli, tmp_path: Path) -> None:
    """`upload` starts rclone right after parsing its arguments, so it comes up while Python imports the engine;
    the engine adopts that daemon instead of starting a second one."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(b"x" * 10)
    r = cli("upload", str(src), "--dataset", "ds")
    assert r.code == 0, r.err
    log = (cli.home / "logs" / "datauploader.log").read_text(encoding="utf-8")
    assert "using the rclone daemon started early" in log
    assert log.count("Serving remote control") <= 1  # one daemon (its start-up line may precede the log file)
