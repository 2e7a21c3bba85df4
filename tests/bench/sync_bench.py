"""Sync-mode benchmark: latency from a file's close to "verified and registered", burst speed, idle cost.

Run from the repository root (about 5 minutes on 2 cores):

    python tests/bench/sync_bench.py                       # everything
    python tests/bench/sync_bench.py --parts latency       # latency only (local + webdav)

- latency: a writer process writes 200 files of 1 MiB at 10 files/s while ``datauploader sync --settle 0.5``
  runs; for each file, close time (recorded by the writer) → time it was registered (the journal's last update,
  which follows verification on storage). Targets: p50 ≤ settle + 0.1 s, p95 ≤ settle + 0.25 s.
- burst: 2,000 files × 64 KiB appear at once; sync's files/s versus batch mode's (``upload``, fresh home) on
  the same files. Target ≥ 0.7×.
- idle: a tree of 100,000 files in 10,000 folders, already uploaded; after sync's catch-up, CPU of the engine
  process averaged over 60 s (target ≤ 2 % of one core) and its RSS (target ≤ 200 MB). rclone is excluded.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.conftest import child_pids  # noqa: E402
from tests.servers import RcloneWebdav, write_config  # noqa: E402

SETTLE = 0.5


def start_sync(home: Path, src: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, DATAUPLOADER_HOME=str(home))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "sync",
            str(src),
            "--dataset",
            "ds",
            "--settle",
            str(SETTLE),
            *extra,
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    journal = home / "journal.sqlite"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until the progress row says it is watching (catch-up done)
        if proc.poll() is not None:
            raise RuntimeError(proc.communicate()[1].decode()[-2000:])
        if journal.exists():
            try:
                row = sqlite3.connect(journal).execute("SELECT phase FROM progress").fetchone()
            except sqlite3.Error:
                row = None
            if row and row[0] == "watching":
                return proc
        time.sleep(0.1)
    raise RuntimeError("sync did not start watching")


def stop_sync(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def registered_times(home: Path) -> dict[str, float]:
    db = sqlite3.connect(home / "journal.sqlite")
    return dict(db.execute("SELECT rel, updated FROM files WHERE state='registered'").fetchall())


def wait_registered(home: Path, n: int, timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = registered_times(home)
        except sqlite3.Error:
            got = {}
        if len(got) >= n:
            return got
        time.sleep(0.05)
    raise RuntimeError(f"only {len(got)} of {n} files registered in {timeout} s")


WRITER = """
import json, os, sys, time
out, n, size, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
closes = {}
data = os.urandom(size)
t0 = time.monotonic()
for i in range(n):
    name = f"file_{i:04d}.bin"
    with open(os.path.join(out, name), "wb") as fh:
        fh.write(data[:-8] + i.to_bytes(8, "big"))
    closes[name] = time.time()
    if rate > 0:
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
json.dump(closes, sys.stdout)
"""


def write_files(folder: Path, n: int, size: int, rate: float) -> dict[str, float]:
    folder.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", WRITER, str(folder), str(n), str(size), str(rate)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def batch_upload(home: Path, src: Path) -> float:
    """Seconds for ``datauploader upload`` of ``src`` into ``home``."""
    env = dict(os.environ, DATAUPLOADER_HOME=str(home))
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "engine", "upload", str(src), "--dataset", "ds"],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def latency(work: Path, target: str) -> dict[str, Any]:
    home = work / f"home-lat-{target}"
    src = work / f"src-lat-{target}"
    src.mkdir(parents=True)
    server = None
    if target == "webdav":
        server = RcloneWebdav(work / "srv")
        server.start()
        write_config(home, {"default": server.profile("lat")})
    try:
        proc = start_sync(home, src)
        try:
            closes = write_files(src, 200, 1 << 20, 10.0)
            done = wait_registered(home, 200, 120)
        finally:
            stop_sync(proc)
    finally:
        if server is not None:
            server.stop()
    lat = [done[name] - closes[name] for name in closes]
    return {
        "target": target,
        "files": len(lat),
        "settle": SETTLE,
        "p50": round(pct(lat, 50), 3),
        "p95": round(pct(lat, 95), 3),
        "max": round(max(lat), 3),
        "targets": {"p50": SETTLE + 0.1, "p95": SETTLE + 0.25},
        "met": pct(lat, 50) <= SETTLE + 0.1 and pct(lat, 95) <= SETTLE + 0.25,
    }


def burst(work: Path) -> dict[str, Any]:
    staging = work / "burst-staging" / "drop"
    write_files(staging, 2000, 64 << 10, 0)
    # Batch mode on the same files, fresh home.
    batch_s = batch_upload(work / "home-burst-batch", staging)
    # Sync mode: the whole folder appears at once (moved in, as a copy tool finishing would do).
    shome = work / "home-burst-sync"
    src = work / "burst-src"
    src.mkdir()
    proc = start_sync(shome, src)
    try:
        t0 = time.time()
        shutil.move(str(staging), str(src / "drop"))
        done = wait_registered(shome, 2000, 300)
    finally:
        stop_sync(proc)
    sync_s = max(done.values()) - t0
    return {
        "files": 2000,
        "file_size": 64 << 10,
        "batch_seconds": round(batch_s, 3),
        "sync_seconds": round(sync_s, 3),
        "sync_vs_batch_speed": round(batch_s / sync_s, 3),
        "target": 0.7,
        "met": batch_s / sync_s >= 0.7,
    }


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def idle(work: Path, seconds: float) -> dict[str, Any]:
    src = work / "idle-src"
    for d in range(10_000):
        folder = src / f"d{d // 100:03d}" / f"e{d % 100:02d}"
        folder.mkdir(parents=True)
        for f in range(10):
            (folder / f"f{f}.dat").write_bytes(b"x")
    home = work / "home-idle"
    upload_s = batch_upload(home, src)
    t = time.perf_counter()
    proc = start_sync(home, src)
    catchup_s = time.perf_counter() - t
    try:
        time.sleep(2.0)
        kids = child_pids(proc.pid)
        c0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
        k0 = sum(proc_cpu_seconds(k) for k in kids)
        peak = kid_peak = 0.0
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            peak = max(peak, proc_rss_mb(proc.pid))
            kid_peak = max(kid_peak, sum(proc_rss_mb(k) for k in kids))
        elapsed = time.monotonic() - t0
        cpu = (proc_cpu_seconds(proc.pid) - c0) / elapsed
        kid_cpu = (sum(proc_cpu_seconds(k) for k in kids) - k0) / elapsed
    finally:
        stop_sync(proc)
    return {
        "files": 100_000,
        "folders": 10_000,
        "batch_upload_seconds": round(upload_s, 1),
        "sync_start_to_watching_seconds": round(catchup_s, 1),
        "idle_cpu_percent_of_one_core": round(100 * cpu, 2),
        "engine_rss_mb": round(peak, 1),
        # Its rclone daemon, apart; the targets hold for the two together.
        "rclone_idle_cpu_percent_of_one_core": round(100 * kid_cpu, 2),
        "rclone_rss_mb": round(kid_peak, 1),
        "targets": {"cpu_percent": 2.0, "rss_mb": 200},
        "met": cpu + kid_cpu <= 0.02 and peak + kid_peak <= 200,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="latency,burst,idle")
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="du-syncbench-"))
    result: dict[str, Any] = {}
    try:
        parts = args.parts.split(",")
        if "latency" in parts:
            result["latency"] = [latency(work, "local"), latency(work, "webdav")]
            print(json.dumps(result["latency"]), file=sys.stderr, flush=True)
        if "burst" in parts:
            result["burst"] = burst(work)
            print(json.dumps(result["burst"]), file=sys.stderr, flush=True)
        if "idle" in parts:
            result["idle"] = idle(work, args.idle_seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
