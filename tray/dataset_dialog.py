"""The dataset dialog: what to upload and under which name, for a sync or a batch upload.

Keyboard first, because scientists at an instrument type or paste paths: focus starts in Folder; Tab goes
Folder → Dataset name → Investigation → Dataset description → Investigation description → metadata rows;
Browse… (Alt+B), Add (Alt+A), Remove (Alt+R) and More rows (Alt+M) stay out of that chain. Return starts,
Escape cancels. The dialog does not judge the input itself: the engine's ``validate`` does (the same rules
and words as the CLI), and its message appears under the field it names.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Sequence
from tkinter import filedialog, ttk
from typing import Any, Literal

from tray._api import DatasetSpec, DataUploaderError, Investigation, parse_meta_value
from tray.forms import PAD, Form, entry, on_key, side_button

META_ROWS = 3
FIELD_KEYS = (
    "paths",
    "name",
    "investigation",
    "description",
    "investigation_description",
    "investigation_title",
    "pi",
    "meta",
    "profile",
)


class DatasetDialog(Form):
    def __init__(
        self,
        root: tk.Misc,
        *,
        mode: Literal["sync", "batch"],
        submit: Callable[[DatasetSpec], None],
        profiles: Sequence[str] = ("default",),
        can_create_investigations: bool = True,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        title = "Start sync for dataset" if mode == "sync" else "Upload finished experiment"
        super().__init__(root, f"DataUploader — {title}", on_close=on_close)
        self.mode = mode
        self._submit = submit
        b = self.body

        self.folder = entry(b, width=48)
        self.field("paths", "Folder:", self.folder, extra=side_button(b, "Browse…", self.browse))
        # Several folders or files: Add moves the Folder entry's path into this list.
        row = self.next_row()
        ttk.Label(b, text="Also upload:").grid(row=row, column=0, sticky="nw", padx=(0, PAD))
        self.more = tk.Listbox(b, height=3, takefocus=False, activestyle="none")
        self.more.grid(row=row, column=1, sticky="ew")
        side = ttk.Frame(b)
        side.grid(row=row, column=2, sticky="nw", padx=(PAD, 0))
        side_button(side, "Add", self.add_path).pack(fill="x")
        side_button(side, "Remove", self.remove_path).pack(fill="x", pady=(PAD // 2, 0))

        self.name = entry(b)
        self.field("name", "Dataset name:", self.name)
        self.investigation = ttk.Combobox(
            b, values=(), state="normal" if can_create_investigations else "readonly"
        )
        self.field("investigation", "Investigation:", self.investigation)
        self.description = entry(b)
        self.field("description", "Dataset description:", self.description)
        self.inv_description = entry(b)
        self.field("investigation_description", "Investigation description:", self.inv_description)
        self.inv_title = entry(b)
        self.field("investigation_title", "Investigation title (if new):", self.inv_title)
        self.pi = entry(b)
        self.field("pi", "Principal investigator (e-mail):", self.pi)

        row = self.next_row()
        ttk.Label(b, text="Metadata (key = value):").grid(
            row=row, column=0, sticky="nw", padx=(0, PAD), pady=(PAD // 2, 0)
        )
        self.meta_frame = ttk.Frame(b)
        self.meta_frame.grid(row=row, column=1, sticky="ew", pady=(PAD // 2, 0))
        self.meta_frame.columnconfigure(1, weight=1)
        self.meta_rows: list[tuple[ttk.Entry, ttk.Entry]] = []
        for _ in range(META_ROWS):
            self.add_meta_row()
        side_button(b, "More rows", self.add_meta_row).grid(
            row=row, column=2, sticky="nw", padx=(PAD, 0), pady=(PAD // 2, 0)
        )
        self.error_line("meta")

        self.profile = ttk.Combobox(b, values=list(profiles), state="readonly")
        self.profile.set(profiles[0] if profiles else "default")
        if len(profiles) > 1:  # one profile (the usual case): nothing to choose
            self.field("profile", "Profile:", self.profile)
        else:
            self.error_line("profile")

        start = "Start sync" if mode == "sync" else "Upload"
        self.button = self.buttons((start, self.start, True), ("Cancel", self.close, False))[start]

        for key, fn in (
            ("b", self.browse),
            ("a", self.add_path),
            ("r", self.remove_path),
            ("m", self.add_meta_row),
        ):
            self.top.bind(f"<Alt-{key}>", on_key(fn))
            self.top.bind(f"<Alt-{key.upper()}>", on_key(fn))
        self.more.bind("<Delete>", lambda _e: self.remove_path())
        self.place(min_width=640)
        self.folder.focus_set()

    # --------------------------------------------------------------------------------------------- fields

    def add_meta_row(self) -> None:
        r = len(self.meta_rows)
        k = entry(self.meta_frame, width=16)
        v = entry(self.meta_frame, width=28)
        k.grid(row=r, column=0, sticky="ew", pady=(0, 2))
        ttk.Label(self.meta_frame, text="=").grid(row=r, column=1, padx=4)
        v.grid(row=r, column=2, sticky="ew", pady=(0, 2))
        self.meta_frame.columnconfigure(2, weight=1)
        self.meta_rows.append((k, v))
        if r >= META_ROWS:
            k.focus_set()
            self.place(min_width=640)

    def browse(self) -> None:
        path = filedialog.askdirectory(parent=self.top, title="Folder to upload", mustexist=True)
        if path:
            self.folder.delete(0, "end")
            self.folder.insert(0, path)
        self.folder.focus_set()

    def add_path(self) -> None:
        text = self.folder.get().strip()
        if not text:
            picked = filedialog.askopenfilenames(parent=self.top, title="Files to upload")
            for p in picked:
                self.more.insert("end", p)
        else:
            self.more.insert("end", text)
            self.folder.delete(0, "end")
        self.folder.focus_set()

    def remove_path(self) -> None:
        chosen: tuple[int, ...] = self.more.curselection()  # type: ignore[no-untyped-call]
        for i in reversed(chosen or ((self.more.size() - 1,) if self.more.size() else ())):
            self.more.delete(i)

    def set_investigations(self, items: Sequence[Investigation] | BaseException) -> None:
        if self.closed:
            return
        if isinstance(items, BaseException):
            self.errors["investigation"].configure(text=f"could not list investigations: {items}")
            return
        self.investigation.configure(values=[i.id for i in items])

    # --------------------------------------------------------------------------------------------- result

    def spec(self) -> DatasetSpec:
        paths = [*self.more.get(0, "end"), self.folder.get().strip()]
        meta: dict[str, Any] = {}
        for n, (k, v) in enumerate(self.meta_rows, 1):
            key, value = k.get().strip(), v.get().strip()
            if not key and not value:
                continue
            if not key:
                raise DataUploaderError(f"metadata row {n}: a value needs a key")
            if key in meta:
                raise DataUploaderError(f"metadata key {key!r} is given twice")
            meta[key] = parse_meta_value(value)
        return DatasetSpec(
            paths=tuple(p for p in paths if p),
            name=self.name.get().strip(),
            investigation=self.investigation.get().strip() or None,
            description=self.description.get().strip() or None,
            investigation_description=self.inv_description.get().strip() or None,
            investigation_title=self.inv_title.get().strip() or None,
            pi=self.pi.get().strip() or None,
            meta=meta,
            profile=self.profile.get() or None,
            mode=self.mode,
        )

    def start(self) -> None:
        try:
            spec = self.spec()
        except DataUploaderError as exc:
            self.show_error("meta", str(exc))
            return
        try:
            self._submit(spec)
        except DataUploaderError as exc:
            field = getattr(exc, "field", None)
            self.show_error(field if field in FIELD_KEYS else None, str(exc))
            return
        self.close()
