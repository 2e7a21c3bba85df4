"""Ctrl-C in the middle of an upload, then the same command again: everything arrives, verified, once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.conftest import Cli, assert_uploaded, posix_signals


@posix_signals
def test_sigint_mid_upload_then_rerun_completes(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"chunk_{i:02d}.bin").write_bytes(os.urandom(2 << 20))
    # A bandwidth limit makes the upload slow enough to interrupt half way.
    proc = cli.popen("upload", str(src), "--dataset", "d", "--bwlimit", "4M")
    dest = cli.storage / "d"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(p.stat().st_size for p in dest.rglob("*") if p.is_file()):
            break
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err
    partial = cli.status()["datasets"][0]
    assert partial["files"]["done"] < 12

    r = cli("upload", str(src), "--dataset", "d")
    assert r.code == 0, (r.out, r.err)
    assert_uploaded(dest, src)  # nothing partial, nothing extra
    d = cli.status()["datasets"][0]
    assert d["state"] == "complete" and d["files"]["done"] == 12
    # No rclone daemon outlives the interrupted run.
    assert not list((cli.home / "run").glob("rcd-*.pid"))


@posix_signals
def test_rclone_daemon_killed_mid_upload_is_restarted(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        (src / f"chunk_{i:02d}.bin").write_bytes(os.urandom(1 << 20))
    proc = cli.popen("-v", "upload", str(src), "--dataset", "d", "--bwlimit", "3M")
    run = cli.home / "run"
    deadline = time.monotonic() + 30
    pidfiles: list[Path] = []
    while time.monotonic() < deadline and not pidfiles:
        pidfiles = list(run.glob(f"rcd-{proc.pid}-*.pid")) if run.exists() else []
        time.sleep(0.05)
    assert pidfiles, "no rclone daemon pid file"
    time.sleep(1.5)
    os.kill(int(pidfiles[0].read_text()), signal.SIGKILL)  # rclone dies (OOM killer, a crash...)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    assert "restarting" in err or "storage not reachable" in err
    assert_uploaded(cli.storage / "d", src)
