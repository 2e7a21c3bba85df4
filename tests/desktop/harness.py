"""A private desktop for UI tests: Xvfb, a D-Bus session, dunst, a notification monitor and a tray host.

Everything here is a real program started by the test and stopped by its own pid (SIGTERM, wait, SIGKILL),
never by name, so tests can run beside other sessions on the same machine. Facts this relies on were measured
on Debian bookworm (shared notes "desktop-testing"): pystray's ``gtk`` backend needs an XEmbed tray
(``trayer``), ``appindicator`` a StatusNotifier host (``gtk-sni-tray-standalone --watcher``), and without a
tray host both backends show nothing and raise nothing, so every check here looks at the screen or the bus.

    with Desktop(tmp_path, host="trayer") as d:
        before = d.screenshot()
        proc = subprocess.Popen([...], env=d.env())
        x, y = d.wait_for_new_icon(before)
        d.click(x, y, button=3)
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageGrab

SCREEN = (1366, 768)  # the smallest laptop screen the dialogs must fit
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

# A session bus with no service directories: nothing is auto-activated behind the test's back (dunst would
# otherwise start from its .service file with a pid nobody stops), and "no notification daemon" is testable.
_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

TRAY_HOSTS = ("trayer", "sni")
BACKEND_HOST = {"gtk": "trayer", "appindicator": "sni"}


def missing_programs() -> list[str]:
    """The programs of tests/apt-packages.txt this harness needs that are not installed."""
    needed = ("Xvfb", "xdotool", "dbus-daemon", "dbus-monitor", "dbus-send", "dunst", "trayer")
    gone = [p for p in needed if shutil.which(p) is None]
    if shutil.which("gtk-sni-tray-standalone") is None:
        gone.append("gtk-sni-tray-standalone")
    return gone


def wait_until(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something true and return that; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Proc:
    """A child process we started; :meth:`stop` ends exactly it, by pid."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log: Path, **kw: Any) -> None:
        self.name = name
        self.log = log
        self._fh = log.open("ab")
        self.popen = subprocess.Popen(
            argv,
            env=dict(env),
            stdout=kw.pop("stdout", self._fh),
            stderr=self._fh,
            stdin=subprocess.DEVNULL,
            **kw,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> int | None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(STOP_TIMEOUT)
        self._fh.close()
        return self.popen.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass(frozen=True)
class NotifyCall:
    """One ``org.freedesktop.Notifications.Notify`` call seen on the bus."""

    app_name: str
    summary: str
    body: str


_CALL = re.compile(r"^method call .*member=Notify\s*$", re.M)
_ARG = re.compile(r'^\s+(string "(?P<s>(?:[^"\\]|\\.)*)"|uint32 \d+|int32 -?\d+)', re.M | re.S)


def parse_notify_calls(text: str) -> list[NotifyCall]:
    """The Notify calls in ``dbus-monitor`` output: (app_name, replaces_id, icon, summary, body, ...)."""
    calls = []
    starts = [m.end() for m in _CALL.finditer(text)]
    for i, start in enumerate(starts):
        block = text[start : starts[i + 1] if i + 1 < len(starts) else len(text)]
        strings = re.findall(r'^\s+string "((?:[^"\\]|\\.)*)"', block, re.M | re.S)
        if len(strings) >= 4:
            app, _icon, summary, body = strings[:4]
            calls.append(NotifyCall(app, summary, body))
    return calls


@dataclass(frozen=True)
class XWindow:
    """A mapped top-level window as the X server sees it (``wm_class`` is the instance name, e.g. a Wine
    program's lower-cased ``.exe`` name)."""

    wid: int
    name: str
    wm_class: str
    x: int
    y: int
    width: int
    height: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.x + self.width, self.y + self.height


class Desktop:
    """Xvfb + private session bus + dunst + dbus-monitor (+ a tray host), torn down in reverse order.

    ``display`` attaches to an X server someone else runs instead of starting Xvfb: Wine's desktop process
    (which docks tray icons and draws their balloons) lives on the display its prefix first used, so a test of a
    Windows program runs on that one. ``bus=False`` starts no D-Bus, dunst or monitor (a Windows program never
    talks to them)."""

    def __init__(
        self,
        base: Path,
        *,
        host: str | None = None,
        notifications: bool = True,
        display: str | None = None,
        bus: bool = True,
    ) -> None:
        assert host in (None, *TRAY_HOSTS), host
        assert bus or not notifications, "notifications need the bus"
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.notifications = notifications
        self.bus = bus
        self._own_display = display is None
        self.display = display or ""
        self.bus_address = ""
        self._bus_pid: int | None = None
        self._procs: list[Proc] = []
        self.monitor_log = base / "dbus-monitor.log"
        self.runtime_dir = base / "xdg-runtime"

    # ---------------------------------------------------------------------------------------------- set-up

    def __enter__(self) -> Desktop:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        self.runtime_dir.mkdir(mode=0o700, exist_ok=True)
        if self._own_display:
            self._start_xvfb()
        elif not self._display_ready():
            raise RuntimeError(f"cannot open the X display {self.display!r}")
        if self.bus:
            self._start_bus()
            self._spawn(
                "dbus-monitor",
                ["dbus-monitor", "--session", "interface='org.freedesktop.Notifications',member='Notify'"],
                stdout_file=self.monitor_log,
            )
            # The monitor prints NameAcquired/NameLost once it is listening; calls made before that are lost.
            wait_until(lambda: self.monitor_log.stat().st_size > 0, START_TIMEOUT, "dbus-monitor to listen")
        if self.notifications:
            self._spawn("dunst", ["dunst", "-config", "/dev/null"])
            wait_until(lambda: self.name_has_owner("org.freedesktop.Notifications"), START_TIMEOUT, "dunst")
        if self.host == "trayer":
            self._spawn(
                "trayer",
                [
                    "trayer",
                    "--edge",
                    "top",
                    "--align",
                    "right",
                    "--widthtype",
                    "request",
                    "--height",
                    "32",
                    "--SetDockType",
                    "true",
                    "--transparent",
                    "false",
                    "--tint",
                    "0xdddddd",
                ],
            )
            wait_until(self._tray_selection_owned, START_TIMEOUT, "trayer to own _NET_SYSTEM_TRAY_S0")
        elif self.host == "sni":
            self._start_sni_host()
        time.sleep(0.3)  # let the host paint its panel before the first screenshot

    def _start_sni_host(self, attempts: int = 3) -> None:
        """gtk-sni-tray-standalone, with its own watcher, up to the point where its host part has registered:
        owning the watcher's name is not enough, an app that looks before the host has registered with its own
        watcher finds "no host" and falls back to an XEmbed icon this host never shows. The host now and then dies
        as it starts (a D-Bus UnknownObject answer it does not handle: "Pattern match failure in do expression at
        app/Main.hs:177"; 2 starts in 60 with both cores busy); then it is started again, up to ``attempts`` times."""
        for attempt in range(1, attempts + 1):
            name = "gtk-sni-tray" if attempt == 1 else f"gtk-sni-tray-{attempt}"
            proc = self._spawn(name, ["gtk-sni-tray-standalone", "--watcher", "--top"])

            def up_or_dead(proc: Proc = proc) -> str | None:
                if not proc.alive():
                    return "dead"
                if self.name_has_owner("org.kde.StatusNotifierWatcher") and self._sni_host_registered():
                    return "up"
                return None

            if wait_until(up_or_dead, START_TIMEOUT, "the StatusNotifier host to register") == "up":
                return
            log_tail = proc.output().strip().splitlines()[-1:] or ["(no output)"]
            print(f"gtk-sni-tray-standalone died as it started (attempt {attempt}): {log_tail[0]}")
        raise AssertionError(f"gtk-sni-tray-standalone died as it started, {attempts} times; see {self.base}")

    def _start_xvfb(self) -> None:
        # Abstract X sockets can collide with other sandboxes sharing the network namespace: a taken display
        # number makes Xvfb exit at once, so try another.
        for _ in range(20):
            n = random.randint(100, 899)
            if Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists():
                continue
            w, h = SCREEN
            proc = Proc(
                "xvfb",
                ["Xvfb", f":{n}", "-screen", "0", f"{w}x{h}x24", "-nolisten", "tcp", "-noreset"],
                os.environ,
                self.base / f"xvfb-{n}.log",
            )
            self.display = f":{n}"
            try:
                wait_until(lambda p=proc: not p.alive() or self._display_ready(), START_TIMEOUT, "Xvfb")
            except AssertionError:
                proc.stop()
                continue
            if proc.alive():
                self._procs.append(proc)
                return
            proc.stop()
        raise RuntimeError("no free X display number found for Xvfb")

    def _display_ready(self) -> bool:
        try:
            from Xlib import display as xdisplay

            xdisplay.Display(self.display).close()
            return True
        except Exception:
            return False

    def _start_bus(self) -> None:
        conf = self.base / "session-bus.conf"
        conf.write_text(_BUS_CONFIG.format(dir=self.runtime_dir))
        out = subprocess.run(
            ["dbus-daemon", f"--config-file={conf}", "--fork", "--print-address=1", "--print-pid=1"],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=True,
        ).stdout.split()
        self.bus_address, self._bus_pid = out[0], int(out[1])

    def _spawn(self, name: str, argv: list[str], *, stdout_file: Path | None = None) -> Proc:
        kw: dict[str, Any] = {}
        out = None
        if stdout_file is not None:
            out = stdout_file.open("wb")
            kw["stdout"] = out
        proc = Proc(name, argv, self.env(), self.base / f"{name}.log", **kw)
        if out is not None:
            out.close()
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self._procs):
            proc.stop()
        self._procs.clear()
        if self._bus_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._bus_pid, signal.SIGTERM)
            self._bus_pid = None

    # ---------------------------------------------------------------------------------------------- queries

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for a program on this desktop (GTK accessibility helpers off)."""
        env = dict(os.environ)
        for k in ("WAYLAND_DISPLAY", "DBUS_SYSTEM_BUS_ADDRESS"):
            env.pop(k, None)
        env.update(
            DISPLAY=self.display,
            NO_AT_BRIDGE="1",
            XDG_RUNTIME_DIR=str(self.runtime_dir),
            GDK_BACKEND="x11",
        )
        if self.bus:
            env["DBUS_SESSION_BUS_ADDRESS"] = self.bus_address
        else:  # nothing of the caller's session leaks in
            env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        env.update(extra or {})
        return env

    def _sni_host_registered(self) -> bool:
        out = subprocess.run(
            [
                "dbus-send",
                "--session",
                "--print-reply",
                "--dest=org.kde.StatusNotifierWatcher",
                "/StatusNotifierWatcher",
                "org.freedesktop.DBus.Properties.Get",
                "string:org.kde.StatusNotifierWatcher",
                "string:IsStatusNotifierHostRegistered",
            ],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.returncode == 0 and "boolean true" in out.stdout

    def name_has_owner(self, name: str) -> bool:
        out = subprocess.run(
            [
                "dbus-send",
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                f"string:{name}",
            ],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=10,
        )
        return "boolean true" in out.stdout

    def _tray_selection_owned(self) -> bool:
        from Xlib import X
        from Xlib import display as xdisplay

        d = xdisplay.Display(self.display)
        try:
            return bool(d.get_selection_owner(d.intern_atom("_NET_SYSTEM_TRAY_S0")) != X.NONE)
        finally:
            d.close()

    def notify_calls(self) -> list[NotifyCall]:
        return parse_notify_calls(self.monitor_log.read_text(errors="replace"))

    def wait_for_notify(self, pattern: str, timeout: float = 20.0) -> NotifyCall:
        """The first Notify call whose summary or body matches the regex ``pattern``."""
        rx = re.compile(pattern)

        def found() -> NotifyCall | None:
            for c in self.notify_calls():
                if rx.search(c.summary) or rx.search(c.body):
                    return c
            return None

        return wait_until(found, timeout, f"a Notify call matching {pattern!r}", interval=0.2)  # type: ignore[no-any-return]

    # ---------------------------------------------------------------------------------------------- screen

    def screenshot(self, save: Path | None = None) -> Image.Image:
        img = ImageGrab.grab(xdisplay=self.display)
        if save is not None:
            save.parent.mkdir(parents=True, exist_ok=True)
            img.save(save)
        return img

    def around(self, x: int, y: int, r: int) -> Image.Image:
        """The screen within ``r`` pixels of (x, y): a tray icon, compared before and after a change."""
        return self.screenshot().crop((x - r, max(0, y - r), x + r, y + r)).convert("RGB")

    def save_enlarged(self, x: int, y: int, path: Path, r: int = 20) -> None:
        """An icon and its surroundings, enlarged four times, so a person can judge its badge."""
        self.around(x, y, r).resize((8 * r, 8 * r), Image.Resampling.NEAREST).save(path)

    def changed_box(
        self, before: Image.Image, after: Image.Image | None = None
    ) -> tuple[int, int, int, int] | None:
        after = after or self.screenshot()
        return ImageChops.difference(before.convert("RGB"), after.convert("RGB")).getbbox()

    def wait_for_new_icon(self, before: Image.Image, timeout: float = 20.0) -> tuple[int, int]:
        """Centre of what appeared in the tray host's panel (top 40 pixels) since ``before``."""

        def look() -> tuple[int, int] | None:
            now = self.screenshot()
            box = (
                ImageChops.difference(before.convert("RGB"), now.convert("RGB"))
                .crop((0, 0, SCREEN[0], 40))
                .getbbox()
            )
            if box is None:
                return None
            # A tray host may shift its other contents when an icon arrives: take the right-most blob.
            x0, y0, x1, y1 = box
            return ((x0 + x1) // 2, (y0 + y1) // 2) if x1 - x0 <= 64 else (x1 - 12, (y0 + y1) // 2)

        return wait_until(look, timeout, "a new tray icon on screen", interval=0.2)  # type: ignore[no-any-return]

    def wait_for_change(self, before: Image.Image, timeout: float = 10.0) -> tuple[int, int, int, int]:
        """The bounding box of what changed on screen since ``before`` (a menu, a dialog)."""

        def look() -> tuple[int, int, int, int] | None:
            return ImageChops.difference(before.convert("RGB"), self.screenshot().convert("RGB")).getbbox()

        return wait_until(look, timeout, "the screen to change", interval=0.1)  # type: ignore[no-any-return]

    # ---------------------------------------------------------------------------------------------- input

    def xdotool(self, *args: str, timeout: float = 20.0) -> str:
        out = subprocess.run(
            ["xdotool", *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if out.returncode != 0:
            raise AssertionError(f"xdotool {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.xdotool("mousemove", str(x), str(y), "sleep", "0.1", "click", str(button))

    def key(self, *keys: str) -> None:
        self.xdotool("key", "--delay", "60", *keys)

    def type(self, text: str) -> None:
        self.xdotool("type", "--delay", "15", text)

    def find_window(self, name: str, timeout: float = 15.0) -> str:
        """The id of a visible window whose title matches the regex ``name``."""

        def look() -> str | None:
            out = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", name],
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=10,
            )
            ids = out.stdout.split()
            return ids[-1] if ids else None

        return wait_until(look, timeout, f"a window named {name!r}", interval=0.2)  # type: ignore[no-any-return]

    def window_gone(self, wid: str, timeout: float = 10.0) -> None:
        def gone() -> bool:
            out = subprocess.run(
                ["xdotool", "getwindowname", wid], env=self.env(), capture_output=True, text=True, timeout=10
            )
            if out.returncode != 0:
                return True
            vis = subprocess.run(
                ["xwininfo", "-id", wid], env=self.env(), capture_output=True, text=True, timeout=10
            )
            return "IsViewable" not in vis.stdout

        wait_until(gone, timeout, f"window {wid} to close", interval=0.2)

    def focus(self, wid: str) -> None:
        """Without a window manager dialogs are undecorated: ``windowfocus --sync`` (not windowactivate)."""
        self.xdotool("windowfocus", "--sync", wid)

    def window_geometry(self, wid: str) -> tuple[int, int, int, int]:
        out = self.xdotool("getwindowgeometry", "--shell", wid)
        v = dict(line.split("=", 1) for line in out.split())
        return int(v["X"]), int(v["Y"]), int(v["WIDTH"]), int(v["HEIGHT"])

    def capture_window(self, wid: str, save: Path) -> Image.Image:
        x, y, w, h = self.window_geometry(wid)
        img = self.screenshot().crop((max(x, 0), max(y, 0), x + w, y + h))
        save.parent.mkdir(parents=True, exist_ok=True)
        img.save(save)
        return img

    # ---------------------------------------------------------------------------------------------- windows

    def windows(self) -> list[XWindow]:
        """The mapped top-level windows, bottom to top (the X stacking order), override-redirect ones too:
        menus, tooltips and balloons of Windows programs under Wine are such windows, with no title."""
        from Xlib import X
        from Xlib import display as xdisplay
        from Xlib.error import XError

        d = xdisplay.Display(self.display)
        found = []
        try:
            for w in d.screen().root.query_tree().children:
                try:
                    if w.get_attributes().map_state != X.IsViewable:
                        continue
                    g = w.get_geometry()
                    cls = w.get_wm_class()
                    name = w.get_wm_name()
                except XError:  # gone while we looked
                    continue
                found.append(
                    XWindow(
                        w.id,
                        name if isinstance(name, str) else "",
                        cls[0] if cls else "",
                        g.x,
                        g.y,
                        g.width,
                        g.height,
                    )
                )
        finally:
            d.close()
        return found

    def wait_for_new_window(
        self,
        before: list[XWindow],
        what: str,
        accept: Callable[[XWindow], bool] = lambda w: True,
        timeout: float = 15.0,
    ) -> XWindow:
        """The top-most mapped window, not in ``before``, that ``accept`` takes."""
        old = {w.wid for w in before}

        def look() -> XWindow | None:
            new = [w for w in self.windows() if w.wid not in old and accept(w)]
            return new[-1] if new else None

        return wait_until(look, timeout, what, interval=0.1)  # type: ignore[no-any-return]

    def read_text(self, img: Image.Image) -> str:
        """The text in ``img``, read by tesseract (OCR): enough to tell which message a small window shows.
        Scaled up four times first; small UI fonts are read far more reliably that way."""
        big = img.convert("L").resize((img.width * 4, img.height * 4), Image.Resampling.BICUBIC)
        path = self.base / "ocr.png"
        big.save(path)
        out = subprocess.run(
            ["tesseract", str(path), "-", "--psm", "6"], capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            raise AssertionError(f"tesseract failed: {out.stderr.strip()}")
        return out.stdout


@contextlib.contextmanager
def desktop(base: Path, **kw: Any) -> Iterator[Desktop]:
    with Desktop(base, **kw) as d:
        yield d
