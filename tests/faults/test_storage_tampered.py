"""The stored copies change behind DataUploader's back (bit rot, a colleague's script, a restore from backup):
``datauploader verify`` must report every difference — missing, size, content — and nothing else (issue 9,
defect 11). A changed byte that keeps size and modification time is only visible to a hash: the backend's own on
a folder, the sha256 of every file read back (``--download``) on WebDAV, which keeps no hashes. On WebDAV the
files are changed through the server, as another client would.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, write_tree
from tests.faults.checks import no_traceback, tail
from tests.servers import Server, rclone_binary, serve, write_config

TREE = {f"scan/f{i}.raw": os.urandom(3000 + i) for i in range(6)}


def _flip_a_byte(p: Path) -> None:
    """Same size, same modification time, one bit different."""
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 1
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


def _tamper_on_disk(dest: Path) -> None:
    _flip_a_byte(dest / "scan" / "f0.raw")
    (dest / "scan" / "f1.raw").unlink()
    os.truncate(dest / "scan" / "f2.raw", 100)


def _tamper_through(srv: Server, folder: str) -> None:
    """Through the WebDAV server, as another client would (``rclone serve webdav`` caches its listings, so
    changes made on its disk behind its back stay unseen for minutes)."""

    def rclone(*args: str, data: bytes | None = None) -> bytes:
        cmd = [rclone_binary(), "--config", str(srv.rclone_conf), *args]
        return subprocess.run(cmd, input=data, capture_output=True, check=True, timeout=60).stdout

    path = srv.storage(folder, "ds", "scan")
    data = bytearray(rclone("cat", f"{path}/f0.raw"))
    data[len(data) // 2] ^= 1
    rclone("rcat", f"{path}/f0.raw", data=bytes(data))
    rclone("deletefile", f"{path}/f1.raw")
    rclone("rcat", f"{path}/f2.raw", data=rclone("cat", f"{path}/f2.raw")[:100])


# Each changed path with the words its DIFFERENT line may give (a shorter file read back may be told as a size or
# as a content difference; a rewritten one as a content or modification-time difference).
CHANGED = {
    "scan/f0.raw": ("content", "modified", "time"),
    "scan/f1.raw": ("missing",),
    "scan/f2.raw": ("size", "content"),
}


@pytest.mark.parametrize("kind", ["local", "webdav"])
def test_verify_reports_every_change_behind_our_back(kind: str, cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    with serve("webdav", tmp_path / "srv") as srv:
        if kind == "local":
            dest = cli.storage / "ds"
            args: tuple[str, ...] = ()
        else:
            write_config(cli.home, {"default": srv.profile("raw")})
            dest = srv.disk("raw", "ds")
            args = ("--download",)  # WebDAV keeps no hash: only reading back proves content
        up = cli("upload", str(src), "--dataset", "ds")
        assert up.code == 0, up.err
        clean = cli("verify", "--dataset", "ds", *args)
        no_traceback(clean.out, clean.err)
        assert clean.code == 0, f"verify of an untouched dataset: exit {clean.code}\n{tail(clean.out)}"
        if kind == "local":
            _tamper_on_disk(dest)
        else:
            _tamper_through(srv, "raw")
        r = cli("verify", "--dataset", "ds", *args)
    no_traceback(r.out, r.err)
    assert r.code == 1, f"exit {r.code}:\n{tail(r.out + r.err)}"
    listed = [line for line in r.out.splitlines() if line.startswith("DIFFERENT ")]
    assert sorted(line.split(":", 1)[0].removeprefix("DIFFERENT ") for line in listed) == sorted(CHANGED)
    for line in listed:
        path, reason = line.removeprefix("DIFFERENT ").split(":", 1)
        assert any(word in reason for word in CHANGED[path]), line
