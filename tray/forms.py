"""The common shape of the tray's dialogs: a small keyboard-first window with an error line under each field.

Return runs the default button, Escape closes; errors are the engine's one-line messages shown under the
field they are about (``DataUploaderError.field``), or at the bottom when they name none. Every window is
kept on screen on a 1366×768 laptop.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk
from typing import Any

ERROR_FG = "#b00020"
PAD = 8


def on_key(action: Callable[[], object]) -> Callable[[tk.Event[Any]], None]:
    """A key binding that runs ``action`` (Tk passes the event; the action does not need it)."""

    def handler(_event: tk.Event[Any]) -> None:
        action()

    return handler


class Window:
    """A Toplevel of the tray: closes with Escape or the window manager, tells its owner when it is gone, and can
    grow to what its content needs now."""

    def __init__(self, root: tk.Misc, title: str, *, on_close: Callable[[], None] | None = None) -> None:
        self.top = tk.Toplevel(root)
        self.top.title(title)
        self._on_close = on_close
        self.closed = False
        self.top.protocol("WM_DELETE_WINDOW", self.close)
        self.top.bind("<Escape>", lambda _e: self.close())

    def refit(self) -> None:
        """Keep the width, take the height the content needs now (within the screen)."""
        self.top.update_idletasks()
        w = self.top.winfo_width()
        h = min(self.top.winfo_reqheight(), self.top.winfo_screenheight() - 60)
        self.top.geometry(f"{w}x{h}")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.top.destroy()
        if self._on_close is not None:
            self._on_close()


class Form(Window):
    """A Toplevel with a grid of labelled fields; subclasses add fields in Tab order."""

    def __init__(self, root: tk.Misc, title: str, *, on_close: Callable[[], None] | None = None) -> None:
        super().__init__(root, title, on_close=on_close)
        self.top.withdraw()  # shown by place() once laid out, so it never flashes at the wrong size
        self.top.resizable(True, False)
        self.body = ttk.Frame(self.top, padding=PAD * 2)
        self.body.grid(row=0, column=0, sticky="nsew")
        self.top.columnconfigure(0, weight=1)
        self.body.columnconfigure(1, weight=1)
        self._row = 0
        self.errors: dict[str, ttk.Label] = {}

    # --------------------------------------------------------------------------------------------- layout

    def field(
        self,
        key: str,
        label: str,
        widget: tk.Widget | None = None,
        *,
        extra: tk.Widget | None = None,
        underline: int = -1,
    ) -> None:
        """Place ``widget`` (already created as a child of ``self.body``) with its label and error line."""
        ttk.Label(self.body, text=label, underline=underline).grid(
            row=self._row, column=0, sticky="w", padx=(0, PAD), pady=(PAD // 2, 0)
        )
        if widget is not None:
            widget.grid(row=self._row, column=1, sticky="ew", pady=(PAD // 2, 0))
        if extra is not None:
            extra.grid(row=self._row, column=2, sticky="w", padx=(PAD, 0), pady=(PAD // 2, 0))
        self._row += 1
        self.error_line(key)

    def error_line(self, key: str) -> None:
        err = ttk.Label(self.body, text="", foreground=ERROR_FG, wraplength=520, justify="left")
        err.grid(row=self._row, column=1, columnspan=2, sticky="w")
        self.errors[key] = err
        self._row += 1

    def next_row(self) -> int:
        row = self._row
        self._row += 1
        return row

    def buttons(self, *specs: tuple[str, Callable[[], None], bool]) -> dict[str, ttk.Button]:
        """A right-aligned button row: (label, command, is_default). The default also runs on Return."""
        self.error_line("")  # messages that name no field
        bar = ttk.Frame(self.body)
        bar.grid(row=self.next_row(), column=0, columnspan=3, sticky="e", pady=(PAD, 0))
        out = {}
        for label, command, default in specs:
            b = ttk.Button(bar, text=label, command=command, default="active" if default else "normal")
            b.pack(side="left", padx=(PAD, 0))
            out[label] = b
            if default:
                self.top.bind("<Return>", on_key(command))
                self.top.bind("<KP_Enter>", on_key(command))
        return out

    def place(self, min_width: int = 0) -> None:
        """Size to content, at most the screen, centred; then show."""
        self.top.update_idletasks()
        sw, sh = self.top.winfo_screenwidth(), self.top.winfo_screenheight()
        w = min(max(self.top.winfo_reqwidth(), min_width), sw - 40)
        h = min(self.top.winfo_reqheight(), sh - 60)
        self.top.geometry(f"{w}x{h}+{max(0, (sw - w) // 2)}+{max(0, (sh - h) // 3)}")
        self.top.deiconify()
        self.top.lift()

    # --------------------------------------------------------------------------------------------- state

    def clear_errors(self) -> None:
        for e in self.errors.values():
            e.configure(text="")

    def show_error(self, key: str | None, message: str) -> None:
        self.clear_errors()
        label = self.errors.get(key or "") or self.errors.get("")
        if label is not None:
            # Wrap at the room the window really has, then let the window grow to show every line.
            self.top.update_idletasks()
            room = self.top.winfo_width() - label.winfo_x() - 4 * PAD
            label.configure(text=message, wraplength=max(200, room))
            self.refit()


def entry(parent: tk.Misc, width: int = 40, **kw: Any) -> ttk.Entry:
    return ttk.Entry(parent, width=width, **kw)


def side_button(parent: tk.Misc, text: str, command: Callable[[], None], underline: int = 0) -> ttk.Button:
    """A helper button outside the Tab chain, reached with Alt+<underlined letter>."""
    return ttk.Button(parent, text=text, command=command, takefocus=False, underline=underline)
