"""Delivers notifications from one thread: pystray's own ``Icon.notify``, else plyer, else the log.

One thread because plyer's D-Bus call blocks and on Windows sleeps for the balloon's timeout; a daemon that
is missing or broken is logged once and never stops the app. Every notice is also written to the log, so
a notification that could not be shown is still on record.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from tray.notify_policy import Notice

log = logging.getLogger(__name__)

Sink = Callable[[Notice], None]


def pystray_sink(icon: Any) -> Sink | None:
    """The icon's own notification (gtk/appindicator: D-Bus; win32: a toast from our icon), if it has one."""
    if not getattr(icon, "HAS_NOTIFICATION", False):
        return None

    def send(n: Notice) -> None:
        icon.notify(n.message, n.title)

    return send


def plyer_sink(app_icon: str | None = None) -> Sink | None:
    try:
        from plyer import notification
    except Exception:  # pragma: no cover - plyer is a dependency
        return None

    def send(n: Notice) -> None:
        kwargs: dict[str, Any] = {
            "title": n.title,
            "message": n.message,
            "app_name": "DataUploader",
            "timeout": 10,
        }
        if app_icon:
            kwargs["app_icon"] = app_icon
        notification.notify(**kwargs)

    return send


class Notifier:
    """``send()`` from the Tk thread; a worker thread tries each sink in turn."""

    def __init__(self, sinks: list[Sink]) -> None:
        self._sinks = sinks
        self._queue: queue.SimpleQueue[Notice | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._broken: set[int] = set()
        self.sent: list[Notice] = []  # what was handed to a sink (tests read it)

    def start(self) -> Notifier:
        self._thread.start()
        return self

    def send(self, notice: Notice) -> None:
        self._queue.put(notice)

    def stop(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            notice = self._queue.get()
            if notice is None:
                return
            log.info("notification: %s: %s", notice.title, notice.message)
            self.sent.append(notice)
            for i, sink in enumerate(self._sinks):
                if i in self._broken:
                    continue
                try:
                    sink(notice)
                    break
                except Exception as exc:
                    # A missing daemon stays missing: say it once, then use the next way.
                    self._broken.add(i)
                    log.warning(
                        "cannot show notifications this way (%s: %s); trying the next",
                        type(exc).__name__,
                        exc,
                    )
            else:
                log.warning("no way to show notifications left; they are only logged")
