"""The frozen Windows tray (``DataUploaderTray.exe``) under Wine, used as a person uses it: icon, menu, dialog,
files arriving, Stop sync, the success balloon, Quit.

The same flow as test_tray_e2e.py's ``test_sync_through_the_menu``, with what is Windows' (and Wine's) instead:
pystray's win32 icon is docked into ``trayer`` by Wine's desktop process (XEmbed); the menu is a Win32 popup menu
that takes keys only once the X focus is on it (without a window manager nobody else gives it); the folder is
typed as ``Z:\\…``; and the success notification is a Win32 balloon drawn by Wine's desktop process, so it is found
on screen, as a new window by the icon, and its text is read back with OCR. The app runs with an empty data home
and no Python and no rclone reachable: the rclone it starts must be its own.

Run by ``build/windows-under-wine.sh tray`` (and by its ``all``, which CI runs); skipped elsewhere.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from tests.conftest import tree_bytes
from tests.desktop.harness import Desktop, XWindow, wait_until
from tests.desktop.test_tray_e2e import dialog, fill_sync_dialog, write_scan
from tests.desktop.wine import WineApp, winpath

APP = WineApp.from_env()

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        APP is None, reason="the frozen Windows tray under Wine: build/windows-under-wine.sh tray"
    ),
]

PROGRAMS = ("wine", "trayer", "xdotool", "tesseract")


@pytest.fixture
def wine_desktop(tmp_path: Path) -> Iterator[Desktop]:
    """trayer on the display of the script's Wine prefix; no D-Bus (a Windows program never uses it)."""
    assert APP is not None
    gone = [p for p in PROGRAMS if shutil.which(p) is None]
    assert not gone, f"missing programs (build/windows-under-wine.sh installs them as root): {gone}"
    assert APP.exe.is_file(), APP.exe
    with Desktop(
        tmp_path / "desktop", host="trayer", display=APP.display, bus=False, notifications=False
    ) as d:
        yield d


class WineTray:
    """``wine DataUploaderTray.exe`` and its icon. Its output goes through a pipe (a Windows program whose
    standard streams are a Linux file fails to start under Wine), drained by a thread."""

    def __init__(self, app: WineApp, d: Desktop, home: Path, art: Path) -> None:
        self.app, self.d, self.home, self.art = app, d, home, art
        self.before = d.screenshot(art / "screen-0-before.png")
        self.env = app.env(d.env(), DATAUPLOADER_HOME=winpath(home))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            ["wine", str(app.exe)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.output = b""
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.x, self.y = d.wait_for_new_icon(self.before, timeout=90)
        self.icon_after = time.monotonic() - self.started
        self.away()
        time.sleep(0.5)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for chunk in iter(lambda: self.proc.stdout.read(4096), b""):  # type: ignore[union-attr]
            self.output += chunk

    def away(self) -> None:
        """The pointer off the icon (its tooltip would cover what the screenshots compare) and off any menu."""
        self.d.xdotool("mousemove", "2", "766")

    def shot_icon(self, name: str) -> None:
        self.d.save_enlarged(self.x, self.y, self.art / name)

    def icon(self) -> Image.Image:
        return self.d.around(self.x, self.y, 10)

    def wait_icon_changes(self, ref: Image.Image, timeout: float = 30) -> None:
        wait_until(
            lambda: ImageChops.difference(self.icon(), ref).getbbox(), timeout, "the tray icon to change", 0.1
        )
        time.sleep(0.3)

    def menu(self, position: int, shot: str | None = None, from_bottom: bool = False) -> XWindow:
        """Right-click the icon, put the X focus on the menu that opens, pick the item at ``position``
        (1-based, separators not counted) with the keyboard."""
        before = self.d.windows()
        self.d.click(self.x, self.y, button=3)
        menu = self.d.wait_for_new_window(
            before,
            "the tray's menu",
            lambda w: w.wm_class == self.app.process_name and not w.name and w.width >= 60 and w.height >= 40,
        )
        self.away()
        self.d.xdotool("windowfocus", str(menu.wid))
        time.sleep(0.4)
        if shot:
            self.d.screenshot().crop(menu.box).save(self.art / shot)
        self.d.key(*(["Up"] if from_bottom else ["Down"]) * position, "Return")
        return menu

    def log(self) -> str:
        path = self.home / "logs" / "datauploader.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # by pid: the Windows process itself (wine runs it in this process)
            self.proc.wait(30)
        self._reader.join(10)


@pytest.fixture
def trays() -> Iterator[list[WineTray]]:
    started: list[WineTray] = []
    yield started
    for t in started:
        t.stop()


def best_line_match(text: str, expected: str) -> float:
    """How like ``expected`` the closest line of OCR output is (0..1). OCR of an 8-point font is close, not exact
    ("uploaded" has come back as "unloaded", commas as full stops)."""
    return max(
        (difflib.SequenceMatcher(None, line.strip(), expected).ratio() for line in text.splitlines()),
        default=0.0,
    )


def test_frozen_windows_tray_sync_balloon_quit(
    wine_desktop: Desktop, artifacts: Path, tmp_path: Path, trays: list[WineTray]
) -> None:
    assert APP is not None
    d = wine_desktop
    home, data = tmp_path / "home", tmp_path / "data"
    data.mkdir()
    (data / "early.dat").write_bytes(os.urandom(50_000))
    tray = WineTray(APP, d, home, artifacts)
    trays.append(tray)
    d.screenshot(artifacts / "screen-1-icon.png")
    tray.shot_icon("icon-1-idle.png")
    idle = tray.icon()
    assert "tray backend: win32" in tray.log(), tray.log()[-2000:]

    tray.menu(1, shot="menu-1-idle.png")  # Start sync for dataset…
    wid = dialog(d, "Start sync for dataset", artifacts, "dialog-sync-empty.png")
    fill_sync_dialog(d, wid, winpath(data), artifacts, settle=0.3)

    dest = home / "storage" / "scan-042"
    files = write_scan(data)
    wait_until(lambda: dest.exists() and tree_bytes(dest) == files, 60, "the files on storage, intact")
    # The rclone that moved them is the app's own (nothing else is reachable): _internal\rclone.exe.
    rclones = APP.processes("rclone.exe")
    assert rclones, "no rclone.exe running under the tray"
    own = (APP.exe.parent / "_internal" / "rclone.exe").as_posix().lower()
    assert all(own in cmd.lower().replace("\\", "/") for _pid, cmd in rclones), (own, rclones)
    tray.wait_icon_changes(idle)
    tray.shot_icon("icon-2-syncing.png")

    before_stop = d.windows()
    screen_before_stop = d.screenshot()
    tray.menu(3, shot="menu-2-syncing.png")  # Start sync, Upload, Stop sync: scan-042
    wait_until(lambda: (dest / "ro-crate-metadata.json").exists(), 60, "the manifest on storage")
    expected = "scan-042 uploaded — 4 files, 650 kB, all verified"
    wait_until(lambda: f"notification: DataUploader: {expected}" in tray.log(), 30, "the notice in the log")
    noticed = time.monotonic()

    # The balloon: Wine's desktop process (explorer.exe) opens it as a new window by the icon, about 2 s after
    # the notice, and keeps it at least 10 s.
    balloon = d.wait_for_new_window(
        before_stop,
        "the success balloon by the tray icon",
        lambda w: (
            w.wm_class == "explorer.exe"
            and w.width >= 100
            and w.height >= 40
            and w.y < tray.y + 200
            and w.x < tray.x < w.x + w.width + 200
        ),
        timeout=30,
    )
    balloon_after = time.monotonic() - noticed
    time.sleep(0.5)  # drawn
    screen = d.screenshot(artifacts / "screen-2-balloon.png")
    shot = screen.crop(balloon.box)
    shot.save(artifacts / "balloon.png")
    changed = ImageChops.difference(screen_before_stop.convert("RGB"), screen.convert("RGB")).crop(
        balloon.box
    )
    assert changed.getbbox() is not None, "the balloon's window shows nothing new"
    text = d.read_text(shot)
    score = best_line_match(text, expected)
    (artifacts / "balloon-ocr.txt").write_text(f"{text}\n(best line {score:.2f} like {expected!r})\n")
    # Like the expected line, and its figures are the ones expected (another notice about the dataset, say
    # "scan-042 uploaded — 3 files, 600 kB, 1 failed", is still 85 % alike).
    assert score >= 0.85 and "4 files" in text and "verified" in text, (
        f"balloon reads {text!r}, not {expected!r}"
    )
    assert best_line_match(text, "DataUploader") >= 0.8, text  # the title

    assert _quit(tray) == 0
    log = tray.log()
    assert "Tk thread guard:" in log and ", 0 from other threads" in log, log[-2000:]
    assert "tray stopped (exit 0)" in log
    wait_until(lambda: not APP.processes("rclone.exe"), 15, "rclone.exe to end with the tray")
    (artifacts / "timings.txt").write_text(
        f"icon on screen {tray.icon_after:.1f} s after wine started\n"
        f"balloon on screen {balloon_after:.1f} s after the notice was logged ({balloon.width}x{balloon.height})\n"
    )


def _quit(tray: WineTray, timeout: float = 30) -> int:
    """Quit (the last item); with nothing running there is no question. The exit code is the Windows one."""
    tray.menu(1, from_bottom=True)
    try:
        return tray.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        tray.d.screenshot(tray.art / "quit-missed.png")
        raise
