"""The storage is unreachable when a run starts (a network blip, a server rebooting).

``sync`` is unattended: it must wait with back-off, say so, and upload once the storage is back. ``upload`` waits
a bounded, configurable time (profile key ``wait_for_storage``), then exits 1 with a clear reason; exit 2 stays
for usage and configuration errors (issue 9, defect 12).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.conftest import Cli, ensure_stopped, wait_for, write_tree
from tests.faults.checks import assert_complete, no_traceback, tail
from tests.faults.procs import StderrLines
from tests.servers import serve, write_config

TREE = {f"frame_{i}.raw": bytes([i]) * 5000 for i in range(5)}


def test_upload_waits_wait_for_storage_then_exits_1(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    with serve("webdav", tmp_path / "srv") as srv:
        srv.stop()  # its port and rclone.conf stay: the storage is configured, just not there
        write_config(cli.home, {"default": srv.profile("raw", wait_for_storage="5s")})
        t0 = time.monotonic()
        r = cli("upload", str(src), "--dataset", "ds", timeout=120)
        took = time.monotonic() - t0
        no_traceback(r.out, r.err)
        assert r.code == 1, f"exit {r.code}:\n{tail(r.out + r.err)}"
        assert 5 <= took < 60, f"waited {took:.1f} s for wait_for_storage = 5s"
        assert "storage" in (r.out + r.err).lower(), "no reason given"
        assert not srv.disk("raw").exists() or not any(srv.disk("raw").rglob("*"))
        srv.start()
        again = cli("upload", str(src), "--dataset", "ds", timeout=120)
        assert again.code == 0, f"exit {again.code} with the storage back:\n{tail(again.out + again.err)}"
        assert_complete(cli, "ds", srv.disk("raw", "ds"), src, len(TREE))


def test_sync_waits_for_the_storage_and_says_so(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    with serve("webdav", tmp_path / "srv") as srv:
        srv.stop()
        write_config(cli.home, {"default": srv.profile("raw")})
        dest = srv.disk("raw", "ds")
        proc = cli.popen("-v", "sync", str(src), "--dataset", "ds", "--settle", "0.3")
        err = StderrLines(proc)
        try:
            time.sleep(4)
            assert proc.poll() is None, f"sync gave up (exit {proc.returncode}):\n{tail(err.text)}"
            assert "storage" in err.text.lower(), (
                f"sync does not say it waits for the storage:\n{tail(err.text)}"
            )
            srv.start()
            wait_for(
                lambda: len(list(dest.glob("frame_*.raw"))) == len(TREE), 90, "the files once it is back"
            )
            wait_for(lambda: cli.status()["datasets"][0]["files"]["done"] == len(TREE), 30, "registration")
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=60)
        finally:
            ensure_stopped(proc)
        err.join(5)
        no_traceback(out, err.text)
        assert proc.returncode == 0, f"exit {proc.returncode}:\n{tail(out + err.text)}"
        assert_complete(cli, "ds", dest, src, len(TREE))
