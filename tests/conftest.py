"""Shared fixtures: an isolated DataUploader home per test and a way to run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from engine.journal import DatasetRecord, Journal

REPO = Path(__file__).resolve().parent.parent

# The fault suite injects POSIX faults (kill -9, SIGSTOP, /proc, tmpfs mounts, FIFOs, device nodes) throughout,
# so on Windows it is not collected at all; build/README.md says so beside the other Windows skips.
collect_ignore = ["faults"] if sys.platform == "win32" else []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "posix_only(reason): the test needs Linux/POSIX (skipped on Windows, e.g. under Wine); reason says why",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``posix_only`` tests on Windows, each with its reason (build/windows-under-wine.sh lists them)."""
    if sys.platform != "win32":
        return
    for item in items:
        mark = item.get_closest_marker("posix_only")
        if mark is not None:
            reason = mark.kwargs.get("reason") or (mark.args[0] if mark.args else "needs POSIX")
            item.add_marker(pytest.mark.skip(reason=f"POSIX only: {reason}"))


#: Tests that stop a child process with SIGINT (Ctrl-C) or SIGKILL. Windows has no per-process Ctrl-C (a
#: CTRL_C_EVENT goes to a whole console group; SIGTERM there is TerminateProcess, not a graceful stop).
posix_signals = pytest.mark.posix_only(reason="stops a child with SIGINT/SIGKILL, which Windows cannot send")


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    """Runs ``python -m engine`` (the same code as the ``datauploader`` script) against one home folder."""

    def __init__(self, home: Path) -> None:
        self.home = home

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DATAUPLOADER_HOME"] = str(self.home)
        env.pop("DATAUPLOADER_RCLONE", None)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "engine", *args]

    def __call__(self, *args: str, timeout: float = 300) -> Result:
        p = subprocess.run(
            self.argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPO
        )
        return Result(p.returncode, p.stdout, p.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )

    def status(self) -> dict[str, Any]:
        r = self("status", "--json")
        assert r.code == 0, r.err
        return json.loads(r.out)  # type: ignore[no-any-return]

    @property
    def storage(self) -> Path:
        return self.home / "storage"

    def write_config(self, text: str) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(text)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    yield Cli(tmp_path / "home")


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``cond`` until it is true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ensure_stopped(proc: subprocess.Popen[str]) -> None:
    """Kill a test's child process by its pid if the test left it running (a failed assertion, say)."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def assert_uploaded(dest: Path, src: Path) -> None:
    """The dataset folder on storage holds exactly the source tree, byte for byte, plus the manifest."""
    got = tree_bytes(dest)
    assert "ro-crate-metadata.json" in got
    got.pop("ro-crate-metadata.json")
    assert got == tree_bytes(src)


def journal_dataset(journal: Journal, name: str = "ds") -> DatasetRecord:
    """A dataset of the local catalogue in ``journal``, for tests (and benchmarks) that drive the journal."""
    return journal.create_dataset(
        profile="default",
        investigation="",
        name=name,
        storage="/s",
        target=name,
        catalogue="local",
        description=None,
        investigation_description=None,
        meta={},
    )


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def child_pids(parent: int, name: bytes = b"rclone") -> list[int]:
    """Live children of ``parent`` whose command line mentions ``name`` (Linux /proc)."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and name in (p / "cmdline").read_bytes():
                found.append(int(p.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
