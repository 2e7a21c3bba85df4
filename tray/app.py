"""``datauploader tray`` / ``datauploader-tray``: the tray applet over one in-process :class:`Engine`.

Threads (measured, see the shared desktop notes): Tk owns the main thread; pystray's ``icon.run()`` runs on a
worker thread; menu clicks and engine events only post to :class:`~tray.mainthread.UiQueue`, which Tk drains
with ``after()``; notifications go out from one notifier thread. SIGTERM and SIGINT (logout, shutdown) are
"Quit now": stop at once, exit 0, and the interrupted syncs resume by themselves at the next start.

Resuming is automatic rather than offered: the tray is mostly restarted by a logout or a reboot in the middle
of an unattended acquisition, when nobody is there to answer a question, and data waiting for an answer is
data not yet safe. A notification names what was resumed, and Stop sync ends it if the experiment is over.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import tkinter as tk
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal

from tray import single_instance
from tray._api import (
    CatalogueReachable,
    CatalogueUnreachable,
    DatasetFinished,
    DatasetHandle,
    DatasetSealed,
    DatasetSpec,
    DataUploaderError,
    Engine,
    Event,
    FileFailed,
    Home,
    Investigation,
    LoginExpired,
    LoginExpiring,
    Session,
    StorageReachable,
    StorageUnreachable,
    resolve_home,
    setup_logging,
)
from tray.activity_window import ActivityWindow
from tray.backend import BackendError, load_pystray
from tray.dataset_dialog import DatasetDialog
from tray.images import IconState, icon_bytes, icon_image
from tray.mainthread import ThreadGuard, UiQueue, guard_tk
from tray.menu import build_menu
from tray.notifier import Notifier, Sink, plyer_sink, pystray_sink
from tray.notify_policy import APP, Notice, NotificationPolicy
from tray.settings_dialog import SettingsDialog
from tray.small_dialogs import FINISH_THEN_QUIT, QUIT_NOW, LoginDialog, QuitDialog
from tray.text import human_bytes, plural
from tray.view import Alerts, Login, MenuEntry, TrayView, tray_view

log = logging.getLogger(__name__)

EngineFactory = Callable[[Home], Engine]
REFRESH_MS = 250  # at most four icon/menu/tooltip updates a second, however many events arrive
TICK_MS = 1000  # time-based notifications (grouped failures, outages past the threshold)


def say(line: str) -> None:
    """One line for a person at a terminal; a frozen windowed app has no stderr, the log has it anyway."""
    log.info("%s", line)  # the file only: the console handler shows warnings, and this line is said below
    if sys.stderr is not None:
        sys.stderr.write(f"datauploader tray: {line}\n")


def real_engine(home: Home) -> Engine:
    return Engine(home)


class TrayApp:
    def __init__(
        self,
        engine: Engine,
        pystray: ModuleType,
        home: Home,
        *,
        policy: NotificationPolicy | None = None,
        extra_sinks: list[Sink] | None = None,
    ) -> None:
        self.engine, self.pystray, self.home = engine, pystray, home
        self.policy = policy or NotificationPolicy()
        self.ui = UiQueue()
        self.alerts = Alerts()
        self.recent: list[tuple[float, str]] = []
        self.quitting = False
        self.exit_code = 0
        self.windows: dict[str, Any] = {}
        self._dirty = True
        self._extra_sinks = extra_sinks or []
        self.root: tk.Tk | None = None
        self.icon: Any = None
        self.guard: ThreadGuard | None = None
        self.notifier: Notifier | None = None
        self.snapshot = engine.snapshot()
        self.logins: list[Login] = []
        self.view: TrayView | None = None
        self._menu: tuple[MenuEntry, ...] = ()

    # ------------------------------------------------------------------------------------------------ life

    def run(self) -> int:
        self.root = root = tk.Tk(className="DataUploader")
        root.withdraw()
        self.guard = guard_tk(root)
        unsubscribe = self.engine.subscribe(lambda ev: self.ui.post(self.on_event, ev))
        self._refresh_logins()
        self._update_view()
        assert self.view is not None
        self.icon = self.pystray.Icon(
            "datauploader",
            icon_image(self.view.state),
            self.view.tooltip,
            menu=build_menu(self.pystray, lambda: self._menu, lambda e: self.ui.post(self.on_menu, e)),
        )
        tray_thread = threading.Thread(target=self.icon.run, name="tray", daemon=True)
        tray_thread.start()
        self.notifier = Notifier(self._sinks()).start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _s, _f: self.ui.post(self.quit_now))
        self.ui.pump(root)
        root.after(REFRESH_MS, self._refresh_loop)
        root.after(TICK_MS, self._tick_loop)
        root.after(0, self._resume_interrupted)
        log.info("tray started (pid %d)", os.getpid())
        try:
            root.mainloop()
        finally:
            self._shut_down(unsubscribe, tray_thread)
        return self.exit_code

    def _sinks(self) -> list[Sink]:
        sinks = list(self._extra_sinks)
        own = pystray_sink(self.icon)
        if own is not None:
            sinks.append(own)
        icon_file = self.home.run_dir / (
            "datauploader.ico" if sys.platform == "win32" else "datauploader.png"
        )
        try:
            if sys.platform == "win32":
                icon_file.write_bytes(icon_bytes(None, "ico"))
            else:
                icon_image(None, 64).save(icon_file)
        except OSError:
            icon_file = None  # type: ignore[assignment]
        other = plyer_sink(str(icon_file) if icon_file else None)
        if other is not None:
            sinks.append(other)
        return sinks

    def _shut_down(self, unsubscribe: Callable[[], None], tray_thread: threading.Thread) -> None:
        self.quitting = True
        unsubscribe()
        if self.icon is not None:
            self.icon.stop()
        tray_thread.join(5)
        try:
            self.engine.close()
        except Exception:
            log.exception("closing the engine failed")
        if self.notifier is not None:
            self.notifier.stop()
        if self.guard is not None:
            log.info(
                "Tk thread guard: %d calls checked, %d from other threads",
                self.guard.calls,
                len(self.guard.violations),
            )
        if self.root is not None:
            self.root.destroy()
        log.info("tray stopped (exit %d)", self.exit_code)

    def _resume_interrupted(self) -> None:
        try:
            specs = self.engine.resumable()
        except DataUploaderError as exc:
            log.warning("cannot list interrupted syncs: %s", exc)
            return
        names = []
        for spec in specs:
            try:
                self.engine.start_sync(spec)
                names.append(spec.name)
            except DataUploaderError as exc:
                self.notify(Notice(APP, f"Could not resume the sync of {spec.name}: {exc}", "error"))
        if names:
            self.notify(
                Notice(
                    APP,
                    f"Resumed {plural(len(names), 'sync')} stopped when DataUploader last quit: {', '.join(names)}. "
                    "Stop sync in the tray menu ends one.",
                    "resumed",
                )
            )
        self._dirty = True

    # ------------------------------------------------------------------------------------------------ state

    def _refresh_loop(self) -> None:
        if self._dirty:
            self._dirty = False
            try:
                self.snapshot = self.engine.snapshot()
            except Exception:
                log.exception("engine snapshot failed")
            self._update_view()
            activity = self.windows.get("activity")
            if activity is not None:
                activity.refresh(self.snapshot, self.recent)
        assert self.root is not None
        self.root.after(REFRESH_MS, self._refresh_loop)

    def _tick_loop(self) -> None:
        for n in self.policy.tick(time.time()):
            self.notify(n)
        assert self.root is not None
        self.root.after(TICK_MS, self._tick_loop)

    def _update_view(self) -> None:
        view = tray_view(self.snapshot, self.alerts, self.logins, quitting=self.quitting)
        old, self.view = self.view, view
        if self.icon is None or view == old:
            self._menu = view.menu
            return
        if old is None or view.state != old.state:
            log.info("icon: %s", view.state.value)
            self.icon.icon = icon_image(view.state)
        if old is None or view.tooltip != old.tooltip:
            self.icon.title = view.tooltip
        if old is None or view.menu != old.menu:
            self._menu = view.menu
            self.icon.update_menu()

    def _refresh_logins(self) -> None:
        logins = []
        try:
            for p in self.engine.profiles():
                if p.needs_login:
                    session = self.engine.whoami(profile=p.name)
                    logins.append(Login(p.name, session.user if session else None))
        except DataUploaderError as exc:
            log.warning("cannot read the profiles: %s", exc)
        self.logins = logins
        self._dirty = True

    @property
    def icon_state(self) -> IconState:
        assert self.view is not None
        return self.view.state

    def notify(self, notice: Notice) -> None:
        if self.notifier is not None:
            self.notifier.send(notice)

    # ------------------------------------------------------------------------------------------------ events

    def on_event(self, ev: Event) -> None:
        """Tk thread: an engine event arrived through the queue."""
        self._dirty = True
        a = self.alerts
        if isinstance(ev, FileFailed) and ev.permanent:
            a.failed[ev.dataset_id] = a.failed.get(ev.dataset_id, 0) + 1
        elif isinstance(ev, StorageUnreachable):
            a.storage_away.add(ev.dataset_id)
        elif isinstance(ev, StorageReachable):
            a.storage_away.discard(ev.dataset_id)
        elif isinstance(ev, CatalogueUnreachable):
            a.catalogue_away.add(ev.profile)
        elif isinstance(ev, CatalogueReachable):
            a.catalogue_away.discard(ev.profile)
        elif isinstance(ev, LoginExpired):
            a.login_expired.add(ev.profile)
            self._refresh_logins()
        elif isinstance(ev, LoginExpiring):
            pass
        elif isinstance(ev, DatasetSealed):
            self.recent.append(
                (ev.time, f"{ev.name}: sealed, {plural(ev.files, 'file')}, {human_bytes(ev.bytes)}")
            )
        elif isinstance(ev, DatasetFinished):
            a.storage_away.discard(ev.dataset_id)
            if ev.error:
                self.recent.append((ev.time, f"{ev.name}: could not run: {ev.error}"))
            elif ev.report is not None and not ev.report.complete:
                r = ev.report
                self.recent.append(
                    (
                        ev.time,
                        f"{ev.name}: stopped, {r.files_done}/{r.files_total} files, {len(r.failed)} failed",
                    )
                )
        for n in self.policy.on_event(ev, time.time()):
            self.notify(n)

    # ------------------------------------------------------------------------------------------------ menu

    def on_menu(self, entry: MenuEntry) -> None:
        """Tk thread: a menu item was clicked."""
        log.info("menu: %s", entry.label)
        action = getattr(self, f"do_{entry.action}", None)
        if action is None or (self.quitting and entry.action != "quit"):
            return
        try:
            action(entry.arg)
        except DataUploaderError as exc:
            self.notify(Notice(APP, str(exc), "error"))
        self._dirty = True

    def _window(self, key: str, make: Callable[[Callable[[], None]], Any]) -> Any:
        """Open one window of a kind at a time: a second click brings the first one forward."""
        w = self.windows.get(key)
        if w is not None and not w.closed:
            w.top.deiconify()
            w.top.lift()
            w.top.focus_force()
            return w
        w = make(lambda: self.windows.pop(key, None))
        self.windows[key] = w
        return w

    def do_start_sync(self, _arg: object = None) -> None:
        self._dataset_dialog("sync")

    def do_upload(self, _arg: object = None) -> None:
        self._dataset_dialog("batch")

    def _dataset_dialog(self, mode: Literal["sync", "batch"]) -> None:
        assert self.root is not None
        profiles = self.engine.profiles()
        names = [p.name for p in profiles] or ["default"]
        first = profiles[0] if profiles else None
        dialog = self._window(
            f"dataset-{mode}",
            lambda closed: DatasetDialog(
                self.root,  # type: ignore[arg-type]
                mode=mode,
                submit=self._submit,
                profiles=names,
                can_create_investigations=first.can_create_investigations if first else True,
                on_close=closed,
            ),
        )
        profile = names[0]

        def fetch() -> None:
            result: list[Investigation] | BaseException
            try:
                result = self.engine.investigations(profile=profile)
            except Exception as exc:
                result = exc
            self.ui.post(dialog.set_investigations, result)

        threading.Thread(target=fetch, name="investigations", daemon=True).start()

    def _submit(self, spec: DatasetSpec) -> None:
        self._start(spec)

    def _start(self, spec: DatasetSpec) -> DatasetHandle:
        spec = self.engine.validate(spec)
        handle = self.engine.start_sync(spec) if spec.mode == "sync" else self.engine.upload(spec)
        log.info("started %s of %s", spec.mode, spec.name)
        self._dirty = True
        return handle

    def _handle(self, dataset_id: object) -> DatasetHandle | None:
        return next((h for h in self.engine.handles() if h.id == dataset_id), None)

    def do_stop_sync(self, dataset_id: object) -> None:
        handle = self._handle(dataset_id)
        if handle is not None:
            self.engine.stop_sync(handle, finish=True)

    def do_pause(self, _arg: object = None) -> None:
        self.engine.pause()

    def do_resume(self, _arg: object = None) -> None:
        self.engine.resume()

    def do_activity(self, _arg: object = None) -> None:
        root = self.root
        assert root is not None
        w = self._window("activity", lambda closed: ActivityWindow(root, retry=self._retry, on_close=closed))
        self.alerts.failed.clear()  # looked at: the icon stops asking for attention
        w.refresh(self.snapshot, self.recent)

    def _retry(self, dataset_id: int) -> None:
        handle = self._handle(dataset_id)
        if handle is not None:
            n = self.engine.retry_failed(handle)
            log.info("retrying %d failed files of %s", n, handle.name)
            self._dirty = True

    def do_login(self, _arg: object = None) -> None:
        profiles = [lg.profile for lg in self.logins if lg.user is None] or [lg.profile for lg in self.logins]

        def done(profile: str, session: Session) -> None:
            self.policy.logged_in(profile)
            self.alerts.login_expired.discard(profile)
            self._refresh_logins()

        self._window(
            "login",
            lambda closed: LoginDialog(
                self.root,  # type: ignore[arg-type]
                self.ui,
                profiles=profiles,
                login=lambda creds, profile: self.engine.login(creds, profile=profile),
                on_done=done,
                on_close=closed,
            ),
        )

    def do_logout(self, profile: object) -> None:
        self.engine.logout(profile=str(profile))
        self._refresh_logins()

    def do_settings(self, _arg: object = None) -> None:
        names = [p.name for p in self.engine.profiles()] or ["default"]
        self._window(
            "settings",
            lambda closed: SettingsDialog(
                self.root,  # type: ignore[arg-type]
                self.home,
                profiles=names,
                on_saved=lambda _s: self._refresh_logins(),
                on_close=closed,
            ),
        )

    def do_quit(self, _arg: object = None) -> None:
        live = self.engine.handles()
        if not live:
            self.quit_now()
            return
        self._window(
            "quit",
            lambda closed: QuitDialog(
                self.root,  # type: ignore[arg-type]
                running=[h.name for h in live],
                choose=self._quit_choice,
                on_close=closed,
            ),
        )

    def _quit_choice(self, choice: str) -> None:
        if choice == QUIT_NOW:
            self.quit_now()
        elif choice == FINISH_THEN_QUIT:
            self.quitting = True
            self._dirty = True
            for h in self.engine.handles():
                if h.mode == "sync":
                    self.engine.stop_sync(h, finish=True)
            self._quit_when_done()

    def _quit_when_done(self) -> None:
        if all(h.done for h in self.engine.handles()):
            self.quit_now()
        else:
            assert self.root is not None
            self.root.after(REFRESH_MS, self._quit_when_done)

    def quit_now(self) -> None:
        """Tk thread: leave the main loop; :meth:`run` then closes the engine (stop now, resume next start)."""
        self.quitting = True
        self.exit_code = 0
        if self.root is not None:
            self.root.quit()


def main(argv: list[str] | None = None, *, engine_factory: EngineFactory | None = None) -> int:
    parser = argparse.ArgumentParser(prog="datauploader tray", description="The DataUploader tray applet.")
    parser.add_argument("--home", help="state folder (default: $DATAUPLOADER_HOME or the per-user folders)")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    home = resolve_home(args.home).ensure()
    # A frozen windowed app (and pythonw) has no stderr: the log file is the only place anything can go.
    console = sys.stderr is not None and not getattr(sys, "frozen", False)
    setup_logging(home, verbose=args.verbose, console=console)
    lock = single_instance.acquire(home)
    if lock is None:
        say("already running for this user (only one tray at a time)")
        return 1
    try:
        try:
            pystray, backend = load_pystray()
        except BackendError as exc:
            say(str(exc))
            return 2
        try:
            engine = (engine_factory or real_engine)(home)
        except DataUploaderError as exc:
            say(str(exc))
            return getattr(exc, "exit_code", 2)
        log.info("tray backend %s, home %s", backend, home.data_dir)
        return TrayApp(engine, pystray, home).run()
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(main())
