"""Bad input, table-driven: CLI arguments, config.toml contents, the environment.

Each case must end with exit 2 (a usage or configuration error), exactly one line on stderr that starts with
``datauploader: error:``, no traceback, and nothing written to storage. Words are only checked where the
message must name something specific (e.g. the config key ``settle`` rather than the option ``--settle``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO, Result, ensure_stopped, write_tree
from tests.faults.checks import no_traceback, one_error_line
from tests.faults.procs import Reaper


@dataclass(frozen=True)
class Bad:
    """One bad input. ``{src}``, ``{empty}``, ``{missing}``, ``{fifo}``, ``{tmp}``, ``{readonly}`` in ``args``,
    ``config`` and ``env`` are replaced by the shared paths (see ``paths``), ``{store}`` by a storage folder of
    the case's own."""

    args: tuple[str, ...]
    config: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    names: tuple[str, ...] = ()  # words the one line must contain
    not_names: tuple[str, ...] = ()  # words it must not contain
    xfail: str | None = None


# A rejected input ends in about a second; a sync that accepted bad input would run forever.
RUN_TIMEOUT = 5.0
UP = ("upload", "{src}", "--dataset", "d")
SYNC = ("sync", "{src}", "--dataset", "d")
STORE = '[profiles.default]\nstorage = "{store}"\n'

CASES: dict[str, Bad] = {
    # -- the command line ------------------------------------------------------------------------------------
    "no-command": Bad(()),
    "unknown-command": Bad(("frobnicate",)),
    "unknown-option": Bad((*UP, "--frobnicate")),
    "upload-without-path": Bad(("upload", "--dataset", "d")),
    "upload-without-dataset": Bad(("upload", "{src}")),
    "missing-path": Bad(("upload", "{missing}", "--dataset", "d")),
    "one-of-two-paths-missing": Bad(("upload", "{src}", "{missing}", "--dataset", "d")),
    "path-is-a-fifo": Bad(("upload", "{fifo}", "--dataset", "d")),
    "empty-source-folder": Bad(("upload", "{empty}", "--dataset", "d")),
    "only-excluded-files": Bad(("upload", "{tmp}/only-excluded", "--dataset", "d")),
    "colliding-paths": Bad(("upload", "{tmp}/twin-a", "{tmp}/twin-b", "--dataset", "d")),
    "reserved-manifest-name-in-folder": Bad(("upload", "{tmp}/with-manifest", "--dataset", "d")),
    "reserved-manifest-name-as-file": Bad(
        ("upload", "{tmp}/with-manifest/ro-crate-metadata.json", "--dataset", "d")
    ),
    "dataset-empty": Bad(("upload", "{src}", "--dataset", "")),
    "dataset-blank": Bad(("upload", "{src}", "--dataset", "   ")),
    "dataset-slash": Bad(("upload", "{src}", "--dataset", "a/b")),
    "dataset-backslash": Bad(("upload", "{src}", "--dataset", "a\\b")),
    "dataset-dotdot": Bad(("upload", "{src}", "--dataset", "..")),
    "dataset-contains-dotdot": Bad(("upload", "{src}", "--dataset", "a..b")),
    "dataset-dot": Bad(("upload", "{src}", "--dataset", ".")),
    "dataset-colon": Bad(("upload", "{src}", "--dataset", "remote:x")),
    "dataset-newline": Bad(("upload", "{src}", "--dataset", "a\nb")),
    "dataset-tab": Bad(("upload", "{src}", "--dataset", "a\tb")),
    "dataset-cr": Bad(("upload", "{src}", "--dataset", "a\rb")),
    "dataset-escape": Bad(("upload", "{src}", "--dataset", "a\x1bb")),
    "dataset-leading-space": Bad(("upload", "{src}", "--dataset", " a")),
    "dataset-too-long": Bad(("upload", "{src}", "--dataset", "d" * 201)),
    "investigation-slash": Bad((*UP, "--investigation", "p/1")),
    "investigation-dotdot": Bad((*UP, "--investigation", "..")),
    "investigation-colon": Bad((*UP, "--investigation", "p:1")),
    "investigation-control-char": Bad((*UP, "--investigation", "p\x01")),
    "meta-without-equals": Bad((*UP, "--meta", "sample")),
    "meta-empty-key": Bad((*UP, "--meta", "=LaB6")),
    "meta-duplicate-key": Bad((*UP, "--meta", "sample=a", "--meta", "sample=b")),
    "meta-control-char-key": Bad((*UP, "--meta", "sam\x01ple=a")),
    "transfers-0": Bad((*UP, "--transfers", "0")),
    "transfers-negative": Bad((*UP, "--transfers", "-1")),
    "transfers-not-a-number": Bad((*UP, "--transfers", "four")),
    "transfers-too-many": Bad((*UP, "--transfers", "100000")),
    "bwlimit-word": Bad((*UP, "--bwlimit", "fast")),
    "bwlimit-bad-unit": Bad((*UP, "--bwlimit", "10Q")),
    "bwlimit-bad-timetable": Bad((*UP, "--bwlimit", "25:00,1M")),
    "bwlimit-bad-timetable-entry": Bad((*UP, "--bwlimit", "08:00,1M nonsense")),
    "bwlimit-bad-day": Bad((*UP, "--bwlimit", "Xyz-08:00,1M")),
    "unknown-profile": Bad((*UP, "--profile", "beamline")),
    "settle-inf": Bad((*SYNC, "--settle", "inf")),
    "settle-nan": Bad((*SYNC, "--settle", "nan")),
    "settle-negative": Bad((*SYNC, "--settle", "-1")),
    "settle-word": Bad((*SYNC, "--settle", "abc")),
    "settle-empty": Bad((*SYNC, "--settle", "")),
    "status-unknown-option": Bad(("status", "--bogus")),
    "login-password-and-token": Bad(("login", "--password-stdin", "--token-stdin")),
    # -- config.toml -----------------------------------------------------------------------------------------
    "config-bad-toml": Bad(UP, config="[profiles.default\nstorage = "),
    "config-not-utf8": Bad(UP, config="# caf\udce9\n"),
    "config-unknown-top-level-key": Bad(UP, config='colour = "blue"\n' + STORE, names=("colour",)),
    "config-unknown-profile-key": Bad(UP, config=STORE + 'bwlimt = "1M"\n', names=("bwlimt",)),
    "config-profiles-not-a-table": Bad(UP, config='profiles = "default"\n'),
    "config-profile-not-a-table": Bad(UP, config='[profiles]\ndefault = "x"\n'),
    "config-storage-missing": Bad(UP, config="[profiles.default]\ntransfers = 2\n", names=("storage",)),
    "config-storage-empty": Bad(UP, config='[profiles.default]\nstorage = ""\n'),
    "config-storage-is-a-file": Bad(UP, config='[profiles.default]\nstorage = "{tmp}/a-file"\n'),
    "config-storage-remote-unknown": Bad(UP, config='[profiles.default]\nstorage = "nosuchremote:raw"\n'),
    "config-rclone-config-missing": Bad(UP, config=STORE + 'rclone_config = "{tmp}/none.conf"\n'),
    "config-rclone-path-missing": Bad(UP, config='rclone = "{tmp}/no/rclone"\n' + STORE),
    "config-rclone-not-rclone": Bad(UP, config='rclone = "/bin/false"\n' + STORE),
    "config-catalogue-unknown": Bad(UP, config=STORE + 'catalogue = "icatt"\n', names=("catalogue",)),
    "config-scicat-without-table": Bad(UP, config=STORE + 'catalogue = "scicat"\n'),
    "config-transfers-0": Bad(UP, config=STORE + "transfers = 0\n", names=("transfers",)),
    "config-transfers-string": Bad(UP, config=STORE + 'transfers = "four"\n', names=("transfers",)),
    "config-transfers-bool": Bad(UP, config=STORE + "transfers = true\n", names=("transfers",)),
    "config-bwlimit-bad": Bad(UP, config=STORE + 'bwlimit = "fast"\n'),
    "config-retry-for-bad": Bad(UP, config=STORE + 'retry_for = "forever"\n', names=("retry_for",)),
    "config-settle-negative": Bad(
        SYNC, config=STORE + "settle = -3\n", names=("settle",), not_names=("--settle",)
    ),
    "config-settle-inf": Bad(
        SYNC, config=STORE + "settle = inf\n", names=("settle",), not_names=("--settle",)
    ),
    "config-settle-nan": Bad(
        SYNC, config=STORE + "settle = nan\n", names=("settle",), not_names=("--settle",)
    ),
    "config-settle-word": Bad(
        SYNC, config=STORE + 'settle = "soon"\n', names=("settle",), not_names=("--settle",)
    ),
    "config-rescan-negative": Bad(SYNC, config=STORE + "rescan = -1\n", names=("rescan",)),
    "config-exclude-not-a-list": Bad(UP, config=STORE + 'exclude = "*.tmp"\n', names=("exclude",)),
    "config-ready-marker-incomplete": Bad(UP, config=STORE + 'ready_markers = [{ files = "*.raw" }]\n'),
    # -- the environment -------------------------------------------------------------------------------------
    "home-is-a-file": Bad(UP, env={"DATAUPLOADER_HOME": "{tmp}/a-file"}),
    "home-under-a-file": Bad(UP, env={"DATAUPLOADER_HOME": "{tmp}/a-file/home"}),
    "home-unwritable": Bad(UP, env={"DATAUPLOADER_HOME": "{readonly}/home"}),
    "rclone-env-missing": Bad(UP, env={"DATAUPLOADER_RCLONE": "{tmp}/no/rclone"}),
    "rclone-env-not-executable": Bad(UP, env={"DATAUPLOADER_RCLONE": "{tmp}/a-file"}),
    "rclone-env-not-rclone": Bad(UP, env={"DATAUPLOADER_RCLONE": "/bin/false"}),
    "rclone-env-too-old": Bad(UP, env={"DATAUPLOADER_RCLONE": "{tmp}/old-rclone"}),
}

# Cases that fail because of a known, still open defect: name -> "issue 9 defect N: <short>".
XFAIL: dict[str, str] = {}


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The files and folders the cases refer to; ``{readonly}`` is a read-only folder even for root."""
    tmp = tmp_path_factory.mktemp("faults-bad-inputs")
    write_tree(tmp / "src", {"a.dat": b"a", "sub/b.dat": b"b"})
    (tmp / "empty").mkdir()
    write_tree(tmp / "only-excluded", {"x.tmp": b"x", "a.part": b"", "~$report.docx": b"", "Thumbs.db": b""})
    write_tree(tmp / "twin-a", {"same.dat": b"a"})
    write_tree(tmp / "twin-b", {"same.dat": b"b"})
    write_tree(tmp / "with-manifest", {"ro-crate-metadata.json": b"{}", "x.dat": b"x"})
    (tmp / "a-file").write_bytes(b"not a folder")
    # An rclone too old for the daemon's flags: it refuses them at once, every time.
    old = tmp / "old-rclone"
    old.write_text("#!/bin/sh\necho 'Error: unknown flag: --rc-job-expire-duration' >&2\nexit 1\n")
    old.chmod(0o755)
    os.mkfifo(tmp / "fifo")
    readonly = tmp / "readonly"
    readonly.mkdir()
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):  # root writes anywhere: only a read-only mount stops it
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(readonly)], capture_output=True
        )
        mounted = r.returncode == 0
    else:
        readonly.chmod(0o500)
    try:
        yield {
            "src": str(tmp / "src"),
            "empty": str(tmp / "empty"),
            "missing": str(tmp / "no-such-folder"),
            "fifo": str(tmp / "fifo"),
            "tmp": str(tmp),
            "readonly": str(readonly),
            "mounted": "yes" if mounted else "",
        }
    finally:
        if mounted:
            subprocess.run(["umount", str(readonly)], capture_output=True)
        readonly.chmod(0o700)


def _fill(text: str, paths: dict[str, str]) -> str:
    for key, value in paths.items():
        text = text.replace("{" + key + "}", value)
    return text


def _files_under(*roots: Path) -> list[str]:
    return [str(p) for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


@dataclass
class Outcome:
    result: Result | None  # None: still running after RUN_TIMEOUT, i.e. the bad input was accepted
    stored: list[str]  # files that appeared on any storage the case could reach


def _run(name: str, paths: dict[str, str]) -> Outcome:
    """One case in a folder of its own (home, storage, working directory)."""
    case = CASES[name]
    here = Path(paths["tmp"]) / "cases" / name
    here.mkdir(parents=True)
    mine = {**paths, "store": str(here / "store")}
    home = here / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAUPLOADER_")}
    env["DATAUPLOADER_HOME"] = str(home)
    env.update({k: _fill(v, mine) for k, v in case.env.items()})
    if case.config is not None:
        home.mkdir()
        (home / "config.toml").write_bytes(_fill(case.config, mine).encode("utf-8", errors="surrogateescape"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", *(_fill(a, mine) for a in case.args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=here,
    )
    result: Result | None = None
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        result = Result(proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        # A sync that accepted the input: abort it as a person would (Ctrl-C twice), so it stops its rclone.
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        ensure_stopped(proc)
    return Outcome(result, _files_under(home / "storage", here / "store", here / "relative"))


@pytest.fixture(scope="module")
def outcomes(paths: dict[str, str]) -> Iterator[dict[str, Outcome]]:
    """Every case run once, four at a time: each is a separate process that fails within a second (or hangs
    until RUN_TIMEOUT), so running them side by side keeps the table cheap without sharing anything."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, name, paths) for name in CASES}
        done = {name: f.result() for name, f in futures.items()}
    yield done
    Reaper(Path(paths["tmp"])).reap()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=XFAIL[n])) if n in XFAIL else n
        for n in CASES
    ],
)
def test_bad_input(name: str, paths: dict[str, str], outcomes: dict[str, Outcome]) -> None:
    case = CASES[name]
    if name == "home-unwritable" and os.geteuid() == 0 and not paths["mounted"]:
        pytest.skip("root writes anywhere and no read-only tmpfs could be mounted here")
    outcome = outcomes[name]
    r = outcome.result
    if r is None:
        pytest.fail(f"still running after {RUN_TIMEOUT:.0f} s: the bad input was accepted")
    no_traceback(r.out, r.err)
    line = one_error_line(r)
    assert r.code == 2, f"exit {r.code}: {line}"
    for word in case.names:
        assert word in line, f"{word!r} not named: {line}"
    for word in case.not_names:
        assert word not in line, f"{word!r} named: {line}"
    assert not outcome.stored, f"written to storage: {outcome.stored}"


def test_there_are_at_least_50_bad_inputs() -> None:
    assert len(CASES) >= 50


def test_status_into_a_closed_pipe(tmp_path: Path) -> None:
    """``datauploader status | head -1``: the reader goes away; no BrokenPipeError, no traceback."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAUPLOADER_")}
    env["DATAUPLOADER_HOME"] = str(home)
    src = write_tree(tmp_path / "src", {"a.dat": b"a"})
    up = subprocess.run(
        [sys.executable, "-m", "engine", "upload", str(src), "--dataset", "d"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert up.returncode == 0, up.stderr
    for args in (["status"], ["status", "--json"]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # `head -1` has read its line and exited before we write
        try:
            p = subprocess.run(
                [sys.executable, "-m", "engine", *args],
                env=env,
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                cwd=REPO,
            )
        finally:
            os.close(write_end)
        no_traceback(p.stderr)
        assert "BrokenPipeError" not in p.stderr, p.stderr
        assert p.stderr.strip() == "", p.stderr


def test_a_relative_home_is_resolved_once_and_shown(tmp_path: Path, paths: dict[str, str]) -> None:
    """Issue 14: DATAUPLOADER_HOME=relative/home means that folder below the working directory, and `datauploader
    config` shows it as an absolute path."""
    env = dict(os.environ, DATAUPLOADER_HOME="relative/home")
    run = subprocess.run(
        [sys.executable, "-m", "engine", "upload", paths["src"], "--dataset", "d"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "relative" / "home" / "storage" / "d" / "a.dat").exists()
    shown = subprocess.run(
        [sys.executable, "-m", "engine", "config"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert f"data home:   {tmp_path / 'relative' / 'home'}" in shown.stdout, shown.stdout
