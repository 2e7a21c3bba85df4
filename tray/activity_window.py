"""Show activity…: every dataset's state and progress, its failed files with reasons, recent results.

Refreshed by the app whenever engine events change the snapshot; ``Retry failed`` hands the failed files of
the selected running dataset back to the engine.
"""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Callable, Sequence
from tkinter import ttk

from tray._api import DatasetState, EngineSnapshot
from tray.forms import PAD, Window
from tray.text import human_bytes, human_duration, human_rate


def _progress(d: DatasetState) -> str:
    return f"{d.files_done}/{d.files_total} files, {human_bytes(d.bytes_done, d.bytes_total)}"


def _speed(d: DatasetState) -> str:
    if not d.running or d.rate <= 0:
        return ""
    return human_rate(d.rate) + (f", {human_duration(d.eta)} left" if d.eta is not None else "")


class ActivityWindow(Window):
    def __init__(
        self,
        root: tk.Misc,
        *,
        retry: Callable[[int], None],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(root, "DataUploader — Activity", on_close=on_close)
        self._retry = retry
        body = ttk.Frame(self.top, padding=PAD * 2)
        body.pack(fill="both", expand=True)

        ttk.Label(body, text="Datasets").pack(anchor="w")
        cols = ("state", "progress", "speed")
        self.datasets = ttk.Treeview(body, columns=cols, height=6, selectmode="browse")
        self.datasets.heading("#0", text="Dataset")
        for c, title, w in zip(cols, ("State", "Progress", "Rate / time left"), (140, 230, 170), strict=True):
            self.datasets.heading(c, text=title)
            self.datasets.column(c, width=w, minwidth=w // 2, stretch=True)
        self.datasets.column("#0", width=180, minwidth=90, stretch=True)
        self.datasets.pack(fill="both", expand=True)
        self.datasets.bind("<<TreeviewSelect>>", lambda _e: self._show_failures())

        ttk.Label(body, text="Failed files of the selected dataset").pack(anchor="w", pady=(PAD, 0))
        self.failures = ttk.Treeview(body, columns=("reason",), height=5, selectmode="browse")
        self.failures.heading("#0", text="File")
        self.failures.heading("reason", text="Reason")
        self.failures.column("#0", width=200, minwidth=100, stretch=True)
        self.failures.column("reason", width=520, minwidth=200, stretch=True)
        self.failures.pack(fill="both", expand=True)
        # Reasons are long (they say what to do): the selected one is shown whole, wrapped, under the list.
        self.detail = ttk.Label(body, text="", justify="left", wraplength=800)
        self.detail.pack(fill="x", pady=(PAD // 2, 0))
        self.failures.bind("<<TreeviewSelect>>", lambda _e: self._show_detail())

        ttk.Label(body, text="Recently finished").pack(anchor="w", pady=(PAD, 0))
        self.recent = tk.Listbox(body, height=4, takefocus=False)
        self.recent.pack(fill="x")

        bar = ttk.Frame(body)
        bar.pack(fill="x", pady=(PAD, 0))
        self.retry_button = ttk.Button(bar, text="Retry failed", command=self._retry_selected, underline=0)
        self.retry_button.pack(side="left")
        self.hint = ttk.Label(bar, text="")
        self.hint.pack(side="left", padx=PAD)
        ttk.Button(bar, text="Close", command=self.close).pack(side="right")
        self.top.bind("<Alt-r>", lambda _e: self._retry_selected())

        self._states: dict[str, DatasetState] = {}
        self.top.update_idletasks()
        sw, sh = self.top.winfo_screenwidth(), self.top.winfo_screenheight()
        w, h = min(max(self.top.winfo_reqwidth(), 900), sw - 40), min(self.top.winfo_reqheight(), sh - 60)
        self.detail.configure(wraplength=w - 4 * PAD)
        self.top.geometry(f"{w}x{h}+{(sw - w) // 2}+{max(0, (sh - h) // 4)}")
        self.datasets.focus_set()

    def refresh(self, snapshot: EngineSnapshot, recent: Sequence[tuple[float, str]]) -> None:
        if self.closed:
            return
        selected = self.datasets.selection()
        self._states = {str(d.id): d for d in snapshot.datasets}
        shown = [d for d in snapshot.datasets if d.running] + [d for d in snapshot.datasets if not d.running]
        self.datasets.delete(*self.datasets.get_children())
        for d in shown:
            state = d.phase.value if d.running and d.phase is not None else d.state
            if snapshot.paused and d.running and "paused" not in state:
                state += " (paused)"
            speed = "—" if snapshot.paused or not d.running else _speed(d)
            self.datasets.insert("", "end", iid=str(d.id), text=d.name, values=(state, _progress(d), speed))
        keep = [i for i in selected if i in self._states]
        if keep:
            self.datasets.selection_set(keep)
        elif shown:
            first_failed = next((d for d in shown if d.files_failed), shown[0])
            self.datasets.selection_set(str(first_failed.id))
        self.recent.delete(0, "end")
        for when, text in list(recent)[-20:][::-1]:
            self.recent.insert("end", f"{time.strftime('%H:%M', time.localtime(when))}  {text}")
        self._show_failures()

    def _selected(self) -> DatasetState | None:
        sel = self.datasets.selection()
        return self._states.get(sel[0]) if sel else None

    def _show_failures(self) -> None:
        self.failures.delete(*self.failures.get_children())
        d = self._selected()
        if d is None:
            self.retry_button.state(["disabled"])
            self._show_detail()
            return
        for i, f in enumerate(d.failures):
            self.failures.insert("", "end", iid=str(i), text=f.path, values=(f.reason,))
        if d.failures:
            self.failures.selection_set("0")
        self._show_detail()
        can = d.running and bool(d.failures)
        self.retry_button.state(["!disabled"] if can else ["disabled"])
        self.hint.configure(
            text="" if can or not d.failures else "start this dataset again to retry its failed files"
        )

    def _show_detail(self) -> None:
        d, sel = self._selected(), self.failures.selection()
        if d is None or not sel or int(sel[0]) >= len(d.failures):
            self.detail.configure(text="")
            return
        f = d.failures[int(sel[0])]
        self.detail.configure(text=f"{f.path}: {f.reason}")
        self.refit()  # the reason may take more lines

    def _retry_selected(self) -> None:
        d = self._selected()
        if d is not None and d.running and d.failures:
            self._retry(d.id)
