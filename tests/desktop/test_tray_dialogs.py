"""The tray's Tk dialogs in-process under Xvfb: Tab order, validation messages under the field at fault, and
every Tk call on the main thread."""

from __future__ import annotations

import contextlib
import threading
import tkinter as tk
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.home import resolve_home
from tests.desktop.conftest import need_desktop
from tests.desktop.harness import Desktop
from tests.fake_engine import FakeEngine
from tray._api import DatasetSpec
from tray.dataset_dialog import DatasetDialog
from tray.mainthread import UiQueue, guard_tk


@pytest.fixture(scope="module")
def screen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desktop]:
    """One X server for the module: Tk keeps its display connection open after a root is destroyed, and a
    process whose X server goes away is ended by Xlib."""
    need_desktop()
    with Desktop(tmp_path_factory.mktemp("dialogs"), notifications=False) as d:
        yield d


@pytest.fixture
def root(screen: Desktop) -> Iterator[tk.Tk]:
    r = tk.Tk(screenName=screen.display)
    r.withdraw()
    guard = guard_tk(r)
    yield r
    r.destroy()
    assert guard.calls > 0 and guard.violations == []


def _chain(start: tk.Misc, n: int) -> list[tk.Misc]:
    out, w = [start], start
    for _ in range(n):
        w = w.tk_focusNext()
        out.append(w)
    return out


def test_dataset_dialog_tab_order_and_keys(root: tk.Tk) -> None:
    dlg = DatasetDialog(root, mode="sync", submit=lambda spec: None)
    root.update()
    assert dlg.top.title() == "DataUploader — Start sync for dataset"
    assert root.focus_get() in (dlg.folder, None)  # None: no window manager gives the focus away
    chain = _chain(dlg.folder, 10)
    k0, v0 = dlg.meta_rows[0]
    k1, _ = dlg.meta_rows[1]
    assert chain == [
        dlg.folder,
        dlg.name,
        dlg.investigation,
        dlg.description,
        dlg.inv_description,
        dlg.inv_title,
        dlg.pi,
        k0,
        v0,
        k1,
        chain[10],
    ]
    for key in ("<Return>", "<Escape>", "<Alt-b>", "<Alt-a>", "<Alt-r>", "<Alt-m>"):
        assert dlg.top.bind(key), key
    x, y = dlg.top.winfo_width(), dlg.top.winfo_height()
    assert x <= 1366 and y <= 768
    dlg.close()


def test_dataset_dialog_builds_the_spec_and_shows_engine_errors_under_the_field(
    root: tk.Tk, tmp_path: Path
) -> None:
    engine = FakeEngine(resolve_home(tmp_path / "home"))
    got: list[DatasetSpec] = []

    def submit(spec: DatasetSpec) -> None:
        got.append(engine.validate(spec))

    dlg = DatasetDialog(root, mode="batch", submit=submit)
    dlg.name.insert(0, "scan-1")
    dlg.start()
    root.update()
    assert dlg.errors["paths"].cget("text") == "give a folder or file to upload"
    assert dlg.errors["name"].cget("text") == ""
    dlg.folder.insert(0, str(tmp_path))
    dlg.name.delete(0, "end")
    dlg.name.insert(0, "a/b")
    dlg.start()
    assert "may not contain" in dlg.errors["name"].cget("text") and dlg.errors["paths"].cget("text") == ""
    dlg.name.delete(0, "end")
    dlg.name.insert(0, "scan-1")
    k, v = dlg.meta_rows[0]
    k.insert(0, "temperature")
    v.insert(0, "300 K")
    dlg.meta_rows[1][1].insert(0, "orphan")
    dlg.start()
    assert dlg.errors["meta"].cget("text") == "metadata row 2: a value needs a key"
    dlg.meta_rows[1][1].delete(0, "end")
    dlg.add_path()  # moves the Folder entry into the list
    dlg.folder.insert(0, str(tmp_path))
    dlg.start()
    assert dlg.closed
    [spec] = got
    assert (
        spec.name == "scan-1"
        and spec.mode == "batch"
        and spec.meta == {"temperature": {"value": 300, "unit": "K"}}
    )
    assert spec.paths == (str(tmp_path), str(tmp_path))
    engine.close()


def test_ui_queue_runs_posts_from_other_threads_on_the_main_thread(root: tk.Tk) -> None:
    ui = UiQueue()
    seen: list[str] = []

    def touch() -> None:
        seen.append(threading.current_thread().name)
        root.title("touched")  # a Tk call: the guard fails the test if this ran off the main thread

    t = threading.Thread(target=lambda: [ui.post(touch) for _ in range(3)], name="engine-ish")
    t.start()
    t.join()
    ui.pump(root, 10)
    root.after(100, root.quit)
    root.mainloop()
    assert seen == [threading.main_thread().name] * 3


def test_the_guard_catches_a_tk_call_from_another_thread(screen: Desktop) -> None:
    r = tk.Tk(screenName=screen.display)
    guard = guard_tk(r)

    def off_thread() -> None:
        with contextlib.suppress(Exception):  # Tk may refuse by itself; the guard must have seen it first
            r.title("from a worker")

    w = threading.Thread(target=off_thread, name="worker")
    w.start()
    w.join()
    r.destroy()
    assert len(guard.violations) == 1 and "from thread worker" in guard.violations[0]
