"""End to end against real storage servers: the CLI uploads a tree, the bytes on the server's disk must match.

Each server (rclone serve webdav / sftp / s3, WsgiDAV) runs as its own process on 127.0.0.1 and serves a folder,
so what arrived is checked on disk, byte for byte, independently of rclone and of DataUploader's verification.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.procs import pid_alive
from engine.rocrate import MANIFEST_NAME, read_crate_files
from tests.servers import SERVERS, Server, port_open, rclone_binary, write_config

KINDS = list(SERVERS)
INVESTIGATION = "inv-42"
DATASET = "run 7 – Probe ü"
SMALL_FILES = 200
CLI_TIMEOUT = 120
# What the engine can check on each server beyond size (what `operations/fsinfo` offers); WebDAV gives no hash
# to an rclone client, so uploads there are verified by size only. Asserted so a silent downgrade shows up.
VERIFY_WITH = {"webdav": "size", "sftp": "sha1", "s3": "md5", "wsgidav": "size"}


# -- the source tree -------------------------------------------------------------------------------------


def _tree_files() -> dict[str, bytes]:
    rnd = random.Random(20261124)
    files: dict[str, bytes] = {
        "top.txt": b"top level\n",
        "empty.dat": b"",
        "nested/a/b/c/deep.bin": rnd.randbytes(4096),
        "with space/file name with spaces.txt": b"spaces\n",
        " leading space.txt": b"leading space\n",
        "ünïcödé/日本語 ファイル.txt": "日本語\n".encode(),
        "ünïcödé/emoji 🚀 rocket.dat": rnd.randbytes(777),
        "ünïcödé/Ωμέγα/κάτι.csv": b"a,b\n1,2\n",
        "odd/100% & +plus #hash ;semi 'q'.txt": b"odd characters\n",
        "odd/dots...txt": b"dots\n",
    }
    for i in range(3):
        files[f"big/random-{i}.bin"] = rnd.randbytes(1 << 20)
    for i in range(SMALL_FILES):
        files[f"many/{i % 10:02d}/file-{i:03d}.dat"] = rnd.randbytes(rnd.randrange(1, 3000))
    return files


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("source") / "tree"
    for rel, data in _tree_files().items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def files_under(root: Path) -> dict[str, Path]:
    """Regular files below ``root`` by ``/``-relative path."""
    out: dict[str, Path] = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[p.relative_to(root).as_posix()] = p
    return out


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """Identity of every file: a rewrite changes ctime (and usually the inode) even if mtime is set back."""
    out = {}
    for rel, p in files_under(root).items():
        st = p.stat()
        out[rel] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return out


# -- running the CLI -------------------------------------------------------------------------------------


def _cli() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / ("datauploader.exe" if os.name == "nt" else "datauploader")
    if script.is_file():
        return [str(script)]
    found = shutil.which("datauploader")
    return [found] if found else [sys.executable, "-m", "engine"]


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "DATAUPLOADER_"))}
    env["DATAUPLOADER_HOME"] = str(home)
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return subprocess.run(
        [*_cli(), *args],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def upload(home: Path, source: Path, profile: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        home,
        "upload",
        str(source),
        "--dataset",
        DATASET,
        "--investigation",
        INVESTIGATION,
        "--profile",
        profile,
        *extra,
    )


def dataset_status(home: Path) -> dict[str, Any]:
    r = run_cli(home, "status", "--json")
    assert r.returncode == 0, r.stderr
    sets = [d for d in json.loads(r.stdout)["datasets"] if d["name"] == DATASET]
    assert len(sets) == 1, r.stdout
    return sets[0]


def log_text(home: Path) -> str:
    log = home / "logs" / "datauploader.log"
    return log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""


def explain(r: subprocess.CompletedProcess[str], home: Path, server: Server) -> str:
    tail = log_text(home)[-4000:]
    return (
        f"exit {r.returncode}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}\n"
        f"--- log\n{tail}\n--- server log\n{server.log()[-2000:]}"
    )


# -- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    with SERVERS[request.param](tmp_path) as srv:
        yield srv


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


# -- tests -----------------------------------------------------------------------------------------------


def test_server_restarts_on_same_port_and_folder(server: Server) -> None:
    pid, port = server.pid, server.port
    (server.disk("probe")).mkdir(parents=True)
    (server.disk("probe", "x y.txt")).write_bytes(b"hello")
    server.stop()
    assert not port_open(port)
    assert pid is not None
    assert not pid_alive(pid)  # portable; os.kill(pid, 0) would terminate a live process on Windows
    server.restart()
    assert server.port == port and server.pid != pid and port_open(port)
    out = subprocess.run(
        [rclone_binary(), "--config", str(server.rclone_conf), "lsf", "-R", server.storage("probe")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["x y.txt"]


def test_upload_tree_then_nothing_again(server: Server, home: Path, source_tree: Path) -> None:
    write_config(home, {"srv": server.profile("raw")})
    dest = server.disk("raw", INVESTIGATION, DATASET)
    expected = files_under(source_tree)

    t0 = time.monotonic()
    first = upload(home, source_tree, "srv")
    t_first = time.monotonic() - t0
    assert first.returncode == 0, explain(first, home, server)

    # Byte for byte on the server's disk: every file, nothing extra but the manifest.
    arrived = files_under(dest)
    assert set(arrived) - set(expected) == {MANIFEST_NAME}, explain(first, home, server)
    assert set(expected) - set(arrived) == set(), explain(first, home, server)
    different = [rel for rel, src in expected.items() if src.read_bytes() != arrived[rel].read_bytes()]
    assert different == []
    # No stray files anywhere else on the server (temporary uploads, a dataset in the wrong place).
    assert set(files_under(server.disk("raw"))) == {f"{INVESTIGATION}/{DATASET}/{r}" for r in arrived}

    crate = {path: (size, sha) for path, size, sha in read_crate_files(dest / MANIFEST_NAME)}
    assert crate == {
        rel: (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for rel, p in expected.items()
    }
    assert f"verify with {VERIFY_WITH[server.kind]}" in log_text(home)

    st = dataset_status(home)
    assert st["state"] == "complete", st
    assert st["files"]["total"] == st["files"]["done"] == len(expected)
    assert st["files"]["failed"] == 0

    # Second run: exit 0, nothing moved, not one file on the server rewritten.
    before = snapshot(dest)
    t0 = time.monotonic()
    second = upload(home, source_tree, "srv")
    t_second = time.monotonic() - t0
    assert second.returncode == 0, explain(second, home, server)
    assert " 0 uploaded now" in second.stdout, second.stdout
    assert snapshot(dest) == before
    assert dataset_status(home)["state"] == "complete"
    print(f"{server.kind}: first upload {t_first:.2f} s, second {t_second:.2f} s")


# -- replacing what is on storage ------------------------------------------------------------------------
#
# When DataUploader decides a path must be (re)written, rclone must write it even if size and mod-time look
# identical: WebDAV (vendor other) keeps no mod-time and gives no hash, so "same size" alone would make rclone
# skip it and size-only verification would accept the stale copy; SFTP keeps mod-times to 1 s.


@pytest.mark.parametrize("changed", [1, 2], ids=["lone-file", "batch"])
@pytest.mark.parametrize(
    "server",
    KINDS,
    indirect=True,
)
def test_changed_file_of_same_size_is_uploaded_again(
    server: Server, changed: int, home: Path, tmp_path: Path
) -> None:
    """Source files rewritten with other bytes of the same length must replace their copies on storage.

    One changed file takes the engine's lone-file path (operations/copyfile), two take a sync/copy job.
    """
    src = tmp_path / "src"
    names = ["sub/a.bin", "sub/b.bin"][:changed]
    whole_second = (int(time.time()) - 3600) * 10**9
    for rel in [*names, "other.txt"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"A" * 1000)
        os.utime(src / rel, ns=(whole_second, whole_second))
    # retry_for bounds the engine's back-off, so a file that cannot be verified fails in seconds, not minutes.
    write_config(home, {"srv": server.profile("raw", retry_for="1s")})
    first = upload(home, src, "srv")
    assert first.returncode == 0, explain(first, home, server)
    dest = server.disk("raw", INVESTIGATION, DATASET)

    new = b"B" * 1000
    for rel in names:
        (src / rel).write_bytes(new)
        # Half a second later than the first version: a rewrite inside SFTP's 1 s mod-time precision.
        os.utime(src / rel, ns=(whole_second, whole_second + 500_000_000))
    second = upload(home, src, "srv")
    on_disk = {rel: (dest / rel).read_bytes()[:1] for rel in names}
    assert second.returncode == 0, f"on storage: {on_disk}\n" + explain(second, home, server)
    assert on_disk == dict.fromkeys(names, b"B"), explain(second, home, server)
    crate = {p: sha for p, _size, sha in read_crate_files(dest / MANIFEST_NAME)}
    assert all(crate[rel] == hashlib.sha256(new).hexdigest() for rel in names)
    assert dataset_status(home)["state"] == "complete"


@pytest.mark.parametrize(
    "server",
    KINDS,
    indirect=True,
)
def test_manifest_is_rewritten_when_metadata_changes(server: Server, home: Path, tmp_path: Path) -> None:
    """A new description must reach ro-crate-metadata.json on storage (same length: same manifest size)."""
    src = tmp_path / "src"
    (src / "f.txt").parent.mkdir(parents=True)
    (src / "f.txt").write_bytes(b"data\n")
    write_config(home, {"srv": server.profile("raw")})
    first = upload(home, src, "srv", "--description", "first")
    assert first.returncode == 0, explain(first, home, server)
    manifest = server.disk("raw", INVESTIGATION, DATASET, MANIFEST_NAME)
    assert '"description": "first"' in manifest.read_text(encoding="utf-8")
    second = upload(home, src, "srv", "--description", "again")
    assert second.returncode == 0, explain(second, home, server)
    assert '"description": "again"' in manifest.read_text(encoding="utf-8"), explain(second, home, server)
