"""The harness itself works on both tray hosts: a throwaway pystray icon is found, its menu shows, it notifies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.desktop.harness import Desktop, parse_notify_calls, wait_until

SMOKE = Path(__file__).with_name("smoke_icon.py")


def test_parse_notify_calls() -> None:
    text = (
        "signal time=1 sender=org.freedesktop.DBus -> destination=:1.3 member=NameAcquired\n"
        "method call time=2 sender=:1.5 -> destination=org.freedesktop.Notifications serial=7 "
        "path=/org/freedesktop/Notifications; interface=org.freedesktop.Notifications; member=Notify\n"
        '   string "app"\n   uint32 0\n   string "/tmp/i.png"\n   string "Title \\"x\\""\n'
        '   string "two\nlines"\n   array [\n   ]\n   int32 -1\n'
    )
    [call] = parse_notify_calls(text)
    assert (call.app_name, call.summary, call.body) == ("app", 'Title \\"x\\"', "two\nlines")


def test_smoke_icon_menu_and_notification(tray_desktop: Desktop, backend: str, artifacts: Path) -> None:
    d = tray_desktop
    before = d.screenshot(artifacts / "0-empty.png")
    proc = subprocess.Popen(
        [sys.executable, str(SMOKE)],
        env=d.env({"PYSTRAY_BACKEND": backend}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        x, y = d.wait_for_new_icon(before)
        with_icon = d.screenshot(artifacts / "1-icon.png")
        d.click(x, y, button=3)
        box = d.wait_for_change(with_icon)
        d.screenshot(artifacts / "2-menu.png")
        assert box[2] - box[0] > 40 and box[3] - box[1] > 40, f"no menu appeared: change {box}"
        d.key("Down", "Down", "Return")  # first item is selected by Down: Alpha, Notify me
        wait_until(lambda: d.notify_calls(), 15, "the Notify call")
        [call] = d.notify_calls()
        assert call.summary == "smoke-notification" and call.body == "smoke body"
        d.click(x, y, button=3)
        d.wait_for_change(with_icon)
        d.key("Up", "Return")  # from the bottom: Quit
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate()[0]
    assert f"pystray._{backend}" in out
