"""Tk runs on the main thread only; everything else hands work to it through :class:`UiQueue`.

pystray's menu callbacks (tray thread) and engine events (engine threads) only ``post()``; the Tk main loop
drains the queue every few milliseconds with ``after()``. Calling Tk from another thread happens to work on
Linux and is undefined elsewhere, so :func:`guard_tk` wraps the Tcl interpreter of the root window and records
(and logs) any call made from another thread; the tests assert there were none.
"""

from __future__ import annotations

import logging
import queue
import threading
import tkinter as tk
import traceback
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

POLL_MS = 40


class UiQueue:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Any thread: run ``fn(*args)`` on the Tk thread soon. Never blocks."""
        self._queue.put((fn, args))

    def drain(self, limit: int = 500) -> None:
        """Tk thread: run what was posted (a bounded number, so the UI stays responsive)."""
        for _ in range(limit):
            try:
                fn, args = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                fn(*args)
            except Exception:
                log.exception("error in %s", getattr(fn, "__qualname__", fn))

    def pump(self, root: tk.Misc, interval_ms: int = POLL_MS) -> None:
        """Start draining from ``root``'s main loop."""

        def tick() -> None:
            self.drain()
            root.after(interval_ms, tick)

        root.after(interval_ms, tick)


class ThreadGuard:
    """Counts Tcl calls and those made off the main thread (with the first few stacks)."""

    def __init__(self) -> None:
        self.calls = 0
        self.violations: list[str] = []
        self.main = threading.main_thread()

    def check(self, name: str) -> None:
        self.calls += 1
        t = threading.current_thread()
        if t is not self.main:
            where = "".join(traceback.format_stack(limit=8)[:-2])
            self.violations.append(f"{name} from thread {t.name}\n{where}")
            log.error("Tk called from thread %s (%s); only the main thread may call Tk", t.name, name)


class _GuardedTcl:
    """Stands in for ``root.tk`` (the ``_tkinter.tkapp``): checks the thread, then forwards."""

    def __init__(self, tkapp: Any, guard: ThreadGuard) -> None:
        object.__setattr__(self, "_tkapp", tkapp)
        object.__setattr__(self, "_guard", guard)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._tkapp, name)
        if not callable(target):
            return target
        guard = self._guard

        def checked(*args: Any, **kwargs: Any) -> Any:
            guard.check(name)
            return target(*args, **kwargs)

        return checked


def guard_tk(root: tk.Tk) -> ThreadGuard:
    """Wrap ``root``'s interpreter; widgets created afterwards share the wrapped one (they copy master.tk)."""
    guard = ThreadGuard()
    root.tk = _GuardedTcl(root.tk, guard)  # type: ignore[assignment]
    return guard
