"""Fixtures for tests that need a real (virtual) desktop; skipped with a reason when its programs are missing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.desktop.harness import BACKEND_HOST, Desktop, missing_programs

ARTIFACTS = Path(
    os.environ.get(
        "DATAUPLOADER_UI_ARTIFACTS", Path(__file__).resolve().parents[2] / "build" / "ui-artifacts"
    )
)


def pytest_report_header(config: pytest.Config) -> str:
    return f"desktop test screenshots: {ARTIFACTS}"


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """A folder for this test's screenshots (kept after the run; the path is printed in the report header)."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "_")
    path = ARTIFACTS / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def need_desktop() -> None:
    gone = missing_programs()
    if gone:
        pytest.skip(f"desktop programs missing (tests/apt-packages.txt): {', '.join(gone)}")


@pytest.fixture(params=["gtk", "appindicator"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tray_desktop(tmp_path: Path, backend: str) -> Iterator[Desktop]:
    """A desktop with the tray host the pystray ``backend`` needs (trayer for gtk, an SNI host for appindicator)."""
    need_desktop()
    with Desktop(tmp_path / "desktop", host=BACKEND_HOST[backend]) as d:
        yield d
