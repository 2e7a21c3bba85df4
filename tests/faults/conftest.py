"""Fixtures of the fault suite: the shared ``Cli`` home, plus a reaper of any rclone daemon a killed uploader
left behind (by pid), and the session's seed in pytest's header so every run can be replayed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.faults.procs import Reaper
from tests.faults.trials import LOG_ENV, SEED, SEED_ENV, TRIALS_ENV


def pytest_report_header() -> str:
    trials = os.environ.get(TRIALS_ENV, "CI defaults")
    return f"fault suite: {SEED_ENV}={SEED}, {TRIALS_ENV}={trials}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With ``DATAUPLOADER_FAULT_LOG`` set, one JSON line per fault test: its id, outcome and duration."""
    outcome = yield
    report = outcome.get_result()
    path = os.environ.get(LOG_ENV)
    if not path or "tests/faults/" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        state = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        if hasattr(report, "wasxfail") and report.passed:
            state = "xpassed"
        entry = {"test": report.nodeid, "outcome": state, "seconds": round(report.duration, 3), "seed": SEED}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


@pytest.fixture(autouse=True)
def reaper(tmp_path: Path) -> Iterator[Reaper]:
    """Every fault test: afterwards, no rclone daemon of a home under its tmp_path survives."""
    r = Reaper(tmp_path)
    yield r
    r.reap()


MODULE_DIRS = "faults-"  # prefix of every folder the suite's module-scoped fixtures make (tmp_path_factory)


@pytest.fixture(scope="session", autouse=True)
def no_daemon_outlives_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Homes of module-scoped fixtures live outside any one test's tmp_path: sweep those folders at the end
    (only ours: other suites' session fixtures may still be stopping their own daemons)."""
    yield
    for folder in tmp_path_factory.getbasetemp().glob(f"{MODULE_DIRS}*"):
        Reaper(folder).reap()


@pytest.fixture
def cli(tmp_path: Path, reaper: Reaper) -> Iterator[Cli]:
    c = Cli(tmp_path / "home")
    reaper.add_home(c.home)
    yield c
