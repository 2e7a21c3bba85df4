"""The tray as a person uses it, under Xvfb, driven only through the screen, the mouse and the keyboard.

Each test starts the real tray (tray.app.main) in its own process on a private desktop (tests/desktop/
harness.py), finds its icon by comparing screenshots, right-clicks it and picks menu items by their position,
types into the dialogs, and checks what reached the storage and which notifications went over the bus.
Screenshots of every icon state, menu and dialog are saved under the artifacts folder (printed in pytest's
header).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from tests.conftest import REPO, tree_bytes
from tests.desktop.harness import Desktop, wait_until
from tests.fake_scicat import FakeSciCat, FakeUser

# The real tray over the real engine (python -m tray is what the datauploader-tray entry point runs), or the
# frozen app when packaging runs these tests against it (build/linux.sh sets DATAUPLOADER_TRAY_CMD).
TRAY = shlex.split(os.environ.get("DATAUPLOADER_TRAY_CMD", "")) or [sys.executable, "-m", "tray"]

pytestmark = pytest.mark.timeout(180)


class Tray:
    """One running tray process and its icon on a desktop."""

    def __init__(
        self, d: Desktop, home: Path, backend: str, art: Path, env: dict[str, str] | None = None
    ) -> None:
        self.d, self.home, self.art = d, home, art
        self.before = d.screenshot()
        self.env = d.env(
            {
                "PYSTRAY_BACKEND": backend,
                "DATAUPLOADER_HOME": str(home),
                "PYTHONPATH": str(REPO),
                **(env or {}),
            }
        )
        self.output = ""
        self.proc = subprocess.Popen(
            TRAY, env=self.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.x, self.y = d.wait_for_new_icon(self.before)
        time.sleep(0.3)
        self.with_icon = d.screenshot()

    def shot_icon(self, name: str) -> None:
        self.d.save_enlarged(self.x, self.y, self.art / name)

    def icon(self) -> Image.Image:
        return self.d.around(self.x, self.y, 12)

    def wait_icon_changes(self, ref: Image.Image, timeout: float = 15) -> Image.Image:
        """Wait until the icon looks different from ``ref`` (an earlier :meth:`icon`); return the new look."""

        def changed() -> Image.Image | None:
            img = self.icon()
            return img if ImageChops.difference(img, ref).getbbox() else None

        now = wait_until(changed, timeout, "the tray icon to change", interval=0.1)
        time.sleep(0.3)
        return now  # type: ignore[no-any-return]

    def menu(self, position: int, shot: str | None = None, from_bottom: bool = False) -> None:
        """Right-click the icon and pick the item at ``position`` (1-based, separators not counted)."""
        base = self.d.screenshot()
        self.d.click(self.x, self.y, button=3)
        self.d.wait_for_change(base)
        time.sleep(0.3)
        if shot:
            self.d.screenshot(self.art / shot)
        self.d.key(*(["Up"] if from_bottom else ["Down"]) * position, "Return")

    def quit(self, timeout: float = 30) -> int:
        """Pick Quit (the last item). Under load an SNI host may still be re-reading a menu that just changed
        when the click lands; then the pick is made once more, with a screenshot of what was on screen."""
        for attempt in range(2):
            self.menu(1, from_bottom=True)
            try:
                return self.proc.wait(timeout / 2)
            except subprocess.TimeoutExpired:
                self.d.screenshot(self.art / f"quit-missed-{attempt}.png")
                self.d.key("Escape")
        return self.wait_exit(timeout)

    def log(self) -> str:
        path = self.home / "logs" / "datauploader.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_exit(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.output = self.proc.communicate()[0]


@pytest.fixture
def trays() -> Iterator[list[Tray]]:
    started: list[Tray] = []
    yield started
    for t in started:
        t.stop()


def dialog(d: Desktop, title: str, art: Path, shot: str) -> str:
    wid = d.find_window(title)
    d.focus(wid)
    time.sleep(0.4)
    d.capture_window(wid, art / shot)
    x, y, w, h = d.window_geometry(wid)
    assert x >= 0 and y >= 0 and x + w <= 1366 and y + h <= 768, (
        f"{title} does not fit 1366x768: {x, y, w, h}"
    )
    return wid


def fill_sync_dialog(d: Desktop, wid: str, folder: str, art: Path, settle: float = 0.0) -> None:
    """What a scientist types into "Start sync for dataset…": the folder, the dataset ``scan-042``, no
    investigation (the embedded default); then OK."""
    d.type(folder)
    d.key("Tab")
    d.type("scan-042")
    d.key("Tab")  # Investigation: left empty on the embedded default
    time.sleep(settle)
    d.capture_window(wid, art / "dialog-sync-filled.png")
    d.key("Return")
    d.window_gone(wid)


def write_scan(data: Path) -> dict[str, bytes]:
    """The instrument writes three frames in chunks while the sync runs; returns every file the dataset must
    hold on storage (``early.dat`` was there before the sync started)."""
    files = {f"frame_{i:03}.raw": os.urandom(200_000 + i) for i in range(3)}
    for name, payload in files.items():
        write_in_chunks(data / name, payload)
    files["early.dat"] = (data / "early.dat").read_bytes()
    return files


def write_in_chunks(path: Path, data: bytes, chunks: int = 4, pause: float = 0.15) -> None:
    with path.open("wb") as fh:
        step = -(-len(data) // chunks)
        for i in range(0, len(data), step):
            fh.write(data[i : i + step])
            fh.flush()
            time.sleep(pause)


def assert_tk_main_thread_only(tray: Tray) -> None:
    log = tray.log()
    assert "Tk thread guard:" in log and ", 0 from other threads" in log, log[-2000:]
    assert "Tk called from thread" not in log


def test_sync_through_the_menu(
    tray_desktop: Desktop, backend: str, artifacts: Path, tmp_path: Path, trays: list[Tray]
) -> None:
    d = tray_desktop
    home, data = tmp_path / "home", tmp_path / "data"
    data.mkdir()
    (data / "early.dat").write_bytes(os.urandom(50_000))
    tray = Tray(d, home, backend, artifacts)
    trays.append(tray)
    tray.shot_icon("icon-1-idle.png")
    idle = tray.icon()
    assert tray.log().count(f"tray backend: {backend}") == 1

    tray.menu(1, shot="menu-1-idle.png")  # Start sync for dataset…
    wid = dialog(d, "Start sync for dataset", artifacts, "dialog-sync-empty.png")
    fill_sync_dialog(d, wid, str(data), artifacts)

    dest = home / "storage" / "scan-042"
    files = write_scan(data)
    wait_until(lambda: dest.exists() and tree_bytes(dest) == files, 30, "the files on storage, intact")
    tray.wait_icon_changes(idle)
    tray.shot_icon("icon-2-syncing.png")

    tray.menu(3, shot="menu-2-syncing.png")  # Start sync, Upload, Stop sync: scan-042
    wait_until(lambda: (dest / "ro-crate-metadata.json").exists(), 30, "the manifest")
    call = d.wait_for_notify(r"scan-042 uploaded")
    assert "4 files" in call.body and "all verified" in call.body, call
    assert tray.quit() == 0
    assert_tk_main_thread_only(tray)
    assert [c for c in d.notify_calls() if "scan-042" in c.body] == [call]


def _config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


@pytest.mark.parametrize("backend", ["gtk"])
def test_failure_attention_activity_quit_and_resume(
    tray_desktop: Desktop, backend: str, artifacts: Path, tmp_path: Path, trays: list[Tray]
) -> None:
    d = tray_desktop
    home, data = tmp_path / "home", tmp_path / "data"
    data.mkdir()
    foreign = home / "storage" / "beamtime-42" / "run-7"
    foreign.mkdir(parents=True)
    for i in range(3):  # three files someone else put on the storage: three permanent failures
        (data / f"clash{i}.dat").write_bytes(b"ours %d" % i)
        (foreign / f"clash{i}.dat").write_bytes(b"theirs %d" % i)
    (data / "fine.dat").write_bytes(b"fine")
    tray = Tray(d, home, backend, artifacts)
    trays.append(tray)
    idle = tray.icon()

    tray.menu(1)
    wid = dialog(d, "Start sync for dataset", artifacts, "dialog-sync-2.png")
    d.key("Tab")  # Folder left empty: the engine's message appears under it
    d.type("run-7")
    d.key("Return")
    time.sleep(0.6)
    d.capture_window(wid, artifacts / "dialog-sync-error.png")
    d.key("shift+Tab")
    d.type(str(data))
    d.key("Tab", "Tab")
    d.type("beamtime-42")  # the investigation
    d.key("Return")
    d.window_gone(wid)

    call = d.wait_for_notify(r"run-7: 3 files failed")
    assert "clash0.dat" in call.body and "2 others" in call.body, call
    attention = tray.wait_icon_changes(idle)
    tray.shot_icon("icon-3-attention.png")
    time.sleep(5)  # the grouping window: no second notification
    assert len([c for c in d.notify_calls() if "failed" in c.body]) == 1

    tray.menu(4)  # Start, Upload, Stop sync: run-7, Pause uploads (attention still wins: failures unseen)
    time.sleep(0.5)
    tray.menu(5)  # Show activity…: the failures are looked at, so the icon shows the pause
    tray.wait_icon_changes(attention)
    tray.shot_icon("icon-4-paused.png")
    wid = dialog(d, "Activity", artifacts, "window-activity.png")
    d.key("Escape")
    d.window_gone(wid)
    tray.menu(4, shot="menu-3-paused.png")  # Resume uploads

    tray.menu(1, from_bottom=True)  # Quit while the sync runs: the question
    wid = dialog(d, "Quit", artifacts, "dialog-quit.png")
    d.key("Tab", "space")  # Quit now (resume next start)
    assert tray.wait_exit() == 0
    assert_tk_main_thread_only(tray)
    assert not (foreign / "ro-crate-metadata.json").exists()

    again = Tray(d, home, backend, artifacts)  # the interrupted sync resumes by itself, and says so
    trays.append(again)
    d.wait_for_notify(r"Resumed 1 sync .*run-7")
    again.proc.send_signal(signal.SIGTERM)  # logout / shutdown: quit now, exit 0
    assert again.wait_exit() == 0


@pytest.mark.parametrize("backend", ["gtk"])
def test_login_settings_expiry_and_single_instance(
    tray_desktop: Desktop, backend: str, artifacts: Path, tmp_path: Path, trays: list[Tray]
) -> None:
    """A SciCat profile against the fake SciCat (real HTTP on 127.0.0.1): log in through the dialog, the login's
    expiry and its end are each notified once, Settings keeps the file's comments, a second tray is refused."""
    d = tray_desktop
    home = tmp_path / "home"
    sc = FakeSciCat([FakeUser("anna", "secret", "anna@example.org", ("p1234",))], token_lifetime=20).start()
    try:
        _login_flow(d, home, backend, artifacts, trays, sc)
    finally:
        sc.stop()


def _login_flow(
    d: Desktop, home: Path, backend: str, artifacts: Path, trays: list[Tray], sc: FakeSciCat
) -> None:
    _config(
        home,
        "# written by facility IT; keep this comment\n"
        '[profiles.default]\nstorage = "storage"  # the beamline disk\n'
        f'catalogue = "scicat"\n\n[profiles.default.scicat]\nurl = "{sc.url}"\n',
    )
    tray = Tray(d, home, backend, artifacts, env={"DATAUPLOADER_TOKEN_STORE": "file"})
    trays.append(tray)
    idle = tray.icon()

    second = subprocess.run(TRAY, env=tray.env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        "datauploader tray: already running for this user (only one tray at a time)"
    ]

    # Start, Upload, Pause, Show activity, Log in…, Settings…, Quit
    tray.menu(5, shot="menu-4-login.png")
    wid = dialog(d, "Log in", artifacts, "dialog-login-empty.png")
    d.type("anna")
    d.key("Tab")
    d.type("wrong")
    d.key("Return")
    time.sleep(0.8)
    d.capture_window(wid, artifacts / "dialog-login-error.png")
    d.type("secret")
    d.key("Return")
    d.window_gone(wid)
    d.wait_for_notify(r"expires in")
    d.wait_for_notify(r"has expired", timeout=60)
    time.sleep(6)  # the engine looks at the login every 5 s: still one notification each
    login_calls = [c.body for c in d.notify_calls() if "login" in c.body]
    assert len(login_calls) == 2, login_calls
    tray.wait_icon_changes(idle)
    tray.shot_icon("icon-5-login-expired.png")

    tray.menu(2, from_bottom=True, shot="menu-5-expired.png")  # Settings…
    wid = dialog(d, "Settings", artifacts, "dialog-settings.png")
    d.key("Tab", "Tab", "Tab")  # storage -> catalogue -> SciCat URL -> bandwidth limit
    d.type("10 megabytes")
    d.key("Return")
    time.sleep(0.6)
    d.capture_window(wid, artifacts / "dialog-settings-error.png")
    d.key("End")
    d.xdotool("key", "--delay", "30", *["BackSpace"] * 14)
    d.type("10M")
    d.key("Return")
    d.window_gone(wid)
    text = (home / "config.toml").read_text()
    assert "# written by facility IT; keep this comment" in text and "# the beamline disk" in text
    assert 'bwlimit = "10M"' in text

    assert tray.quit() == 0
    assert_tk_main_thread_only(tray)


@pytest.mark.parametrize("backend", ["appindicator"])
def test_scicat_login_logout_batch_upload_and_finish_then_quit(
    tray_desktop: Desktop, backend: str, artifacts: Path, tmp_path: Path, trays: list[Tray]
) -> None:
    """The SciCat profile end to end through the menu: Log in…, Log out (anna), Log in… again, Upload finished
    experiment… into an existing proposal, a sync, then Quit with "Finish, then quit": sealed, registered, exit 0."""
    d = tray_desktop
    home, batch, live = tmp_path / "home", tmp_path / "batch", tmp_path / "live"
    batch.mkdir()
    live.mkdir()
    batch_files = {f"image_{i}.tif": os.urandom(30_000 + i) for i in range(3)}
    for name, data in batch_files.items():
        (batch / name).write_bytes(data)
    with FakeSciCat([FakeUser("anna", "secret", "anna@example.org", ("p1234",))]) as sc:
        sc.add_proposal("p1234", "p1234", title="Anna's beamtime")
        _config(
            home,
            '[profiles.default]\nstorage = "storage"\ncatalogue = "scicat"\n\n'
            f'[profiles.default.scicat]\nurl = "{sc.url}"\n',
        )
        tray = Tray(d, home, backend, artifacts, env={"DATAUPLOADER_TOKEN_STORE": "file"})
        trays.append(tray)
        tokens = home / "tokens.json"

        def log_in(shot: str) -> None:
            tray.menu(5, shot=shot)  # Start, Upload, Pause, Show activity, Log in…
            wid = dialog(d, "Log in", artifacts, "dialog-login-scicat.png")
            d.type("anna")
            d.key("Tab")
            d.type("secret")
            d.key("Return")
            d.window_gone(wid)
            wait_until(lambda: tokens.exists() and "scicat" in tokens.read_text(), 15, "the stored token")

        log_in("menu-6-logged-out.png")
        tray.menu(5, shot="menu-7-logged-in.png")  # Log out (anna)
        wait_until(lambda: not tokens.exists() or "scicat" not in tokens.read_text(), 15, "the token gone")
        log_in("menu-8-logged-out-again.png")

        tray.menu(2)  # Upload finished experiment…
        wid = dialog(d, "Upload finished experiment", artifacts, "dialog-upload.png")
        d.type(str(batch))
        d.key("Tab")
        d.type("powder-1")
        d.key("Tab")
        d.type("p1234")
        d.capture_window(wid, artifacts / "dialog-upload-filled.png")
        d.key("Return")
        d.window_gone(wid)
        d.wait_for_notify(r"powder-1", timeout=60)
        stored = home / "storage" / "p1234" / "powder-1"
        wait_until(lambda: stored.exists() and set(batch_files) <= set(tree_bytes(stored)), 30, "the batch")
        [ds] = [x for x in sc.datasets.values() if x["datasetName"] == "powder-1"]
        assert ds["numberOfFiles"] == 3

        tray.menu(1)  # Start sync for dataset…
        wid = dialog(d, "Start sync for dataset", artifacts, "dialog-sync-scicat.png")
        d.type(str(live))
        d.key("Tab")
        d.type("live-1")
        d.key("Tab")
        d.type("p1234")
        d.key("Return")
        d.window_gone(wid)
        write_in_chunks(live / "frame.raw", os.urandom(100_000))
        tray.menu(1, from_bottom=True)  # Quit, with a sync running: the question
        wid = dialog(d, "Quit", artifacts, "dialog-quit-finish.png")
        d.key("Return")  # the default: Finish, then quit
        assert tray.wait_exit(60) == 0
        sealed = home / "storage" / "p1234" / "live-1"
        assert (sealed / "frame.raw").read_bytes() == (live / "frame.raw").read_bytes()
        assert (sealed / "ro-crate-metadata.json").exists()
        [ds] = [x for x in sc.datasets.values() if x["datasetName"] == "live-1"]
        assert ds["numberOfFiles"] == 1
        assert_tk_main_thread_only(tray)
