"""Settings…: one profile's storage, catalogue, bandwidth, settle time and excludes, plus start at login.

Reading, checking and writing ``config.toml`` belong to :mod:`engine.settings_file` (the CLI can use them
too); this dialog only shows the values and the error of the field at fault.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Sequence
from tkinter import filedialog, ttk

from tray._api import (
    DataUploaderError,
    Home,
    ProfileSettings,
    SettingsError,
    autostart_off,
    autostart_on,
    autostart_status,
    read_settings,
    save_settings,
)
from tray.forms import Form, entry, side_button


class SettingsDialog(Form):
    def __init__(
        self,
        root: tk.Misc,
        home: Home,
        *,
        profiles: Sequence[str],
        on_saved: Callable[[ProfileSettings], None] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(root, "DataUploader — Settings", on_close=on_close)
        self.home, self._on_saved = home, on_saved
        b = self.body
        self.profile = ttk.Combobox(b, values=list(profiles))
        self.field("profile", "Profile:", self.profile)
        self.storage = entry(b, width=44)
        self.field(
            "storage",
            "Storage (folder or remote:path):",
            self.storage,
            extra=side_button(b, "Browse…", self.browse),
        )
        self.catalogue = ttk.Combobox(b, values=("local", "scicat"), state="readonly", width=10)
        self.field("catalogue", "Catalogue:", self.catalogue)
        self.scicat_url = entry(b, width=44)
        self.field("scicat_url", "SciCat URL:", self.scicat_url)
        self.bwlimit = entry(b, width=24)
        self.field("bwlimit", "Bandwidth limit (e.g. 10M):", self.bwlimit)
        self.settle = entry(b, width=10)
        self.field("settle", "Settle time (s):", self.settle)
        self.exclude = entry(b, width=44)
        self.field("exclude", "Exclude (patterns, space-separated):", self.exclude)
        self.start_at_login = tk.BooleanVar(self.top, _autostart_enabled())
        check = ttk.Checkbutton(b, text="Start DataUploader when I log in", variable=self.start_at_login)
        self.field("start_at_login", "", check)
        self.buttons(("Save", self.save, True), ("Cancel", self.close, False))
        self.profile.bind("<<ComboboxSelected>>", lambda _e: self.load(self.profile.get()))
        self.catalogue.bind("<<ComboboxSelected>>", lambda _e: self._catalogue_changed())
        self.load(profiles[0] if profiles else "default")
        self.place(min_width=600)
        self.storage.focus_set()

    def load(self, profile: str) -> None:
        try:
            s = read_settings(self.home, profile)
        except DataUploaderError as exc:
            self.show_error(None, str(exc))
            s = ProfileSettings(profile=profile)
        self.profile.set(s.profile)
        for widget, value in (
            (self.storage, s.storage),
            (self.scicat_url, s.scicat_url or ""),
            (self.bwlimit, s.bwlimit or ""),
            (self.settle, s.settle or ""),
            (self.exclude, " ".join(s.exclude)),
        ):
            widget.configure(state="normal")
            widget.delete(0, "end")
            widget.insert(0, value)
        self.catalogue.set(s.catalogue)
        self._catalogue_changed()

    def _catalogue_changed(self) -> None:
        self.scicat_url.configure(state="normal" if self.catalogue.get() == "scicat" else "disabled")

    def browse(self) -> None:
        path = filedialog.askdirectory(parent=self.top, title="Storage folder")
        if path:
            self.storage.delete(0, "end")
            self.storage.insert(0, path)

    def settings(self) -> ProfileSettings:
        return ProfileSettings(
            profile=self.profile.get().strip(),
            storage=self.storage.get().strip(),
            catalogue=self.catalogue.get(),
            scicat_url=self.scicat_url.get().strip() or None,
            bwlimit=self.bwlimit.get().strip() or None,
            settle=self.settle.get().strip() or None,
            exclude=tuple(self.exclude.get().split()),
        )

    def save(self) -> None:
        s = self.settings()
        try:
            save_settings(self.home, s)
        except SettingsError as exc:
            self.show_error(exc.field, str(exc))
            return
        except DataUploaderError as exc:
            self.show_error(None, str(exc))
            return
        try:
            wanted = self.start_at_login.get()
            if wanted and not _autostart_enabled():
                autostart_on()
            elif not wanted and _autostart_enabled():
                autostart_off()
        except OSError as exc:
            self.show_error("start_at_login", f"could not change start at login: {exc}")
            return
        if self._on_saved is not None:
            self._on_saved(s)
        self.close()


def _autostart_enabled() -> bool:
    try:
        return autostart_status().enabled
    except OSError:  # an unreadable registry or config folder: show it off; saving says why it failed
        return False
