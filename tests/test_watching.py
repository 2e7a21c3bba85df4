"""The folder watcher's fallbacks: polling for network shares, the inotify watch limit, a dead observer."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from engine import watching
from engine.watching import Watcher
from tests.conftest import wait_for


def _collect(tmp_path: Path, **kwargs: object) -> tuple[Watcher, list[tuple[str, str]]]:
    events: list[tuple[str, str]] = []
    w = Watcher([(tmp_path, True)], lambda p, k: events.append((Path(p).name, k)), **kwargs)  # type: ignore[arg-type]
    w.start()
    return w, events


def test_polling_observer_sees_new_files(tmp_path: Path) -> None:
    w, events = _collect(tmp_path, polling=True, poll_interval=0.2)
    try:
        assert w.polling and not w.has_close_events
        (tmp_path / "a.dat").write_bytes(b"x")
        wait_for(lambda: ("a.dat", "created") in events, 5, "a created event from polling")
    finally:
        w.stop()


@pytest.mark.posix_only(reason="reads the Linux mount table; on Windows only UNC paths are polled")
def test_network_filesystems_are_polled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(watching, "filesystem_type", lambda path: "cifs")
    w, _ = _collect(tmp_path)
    try:
        assert w.polling
    finally:
        w.stop()


def test_inotify_limit_falls_back_to_polling_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    real_make = Watcher._make

    def make(self: Watcher, polling: bool):  # type: ignore[no-untyped-def]
        if not polling:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return real_make(self, polling)

    monkeypatch.setattr(Watcher, "_make", make)
    w, events = _collect(tmp_path, poll_interval=0.2)
    try:
        assert w.polling
        (tmp_path / "b.dat").write_bytes(b"x")
        wait_for(lambda: ("b.dat", "created") in events, 5, "events from the fallback")
        w.stop()
        w.start()
    finally:
        w.stop()
    assert sum("watch limit" in r.message for r in caplog.records) == 1


def test_a_dead_observer_is_restarted(tmp_path: Path) -> None:
    w, events = _collect(tmp_path)
    try:
        assert not w.supervise()  # alive: nothing to do
        assert w._observer is not None
        w._observer.stop()  # the thread dies, as a polling thread does when a share vanishes
        w._observer.join(5)
        assert w.supervise() and w.alive()
        (tmp_path / "c.dat").write_bytes(b"x")
        wait_for(
            lambda: ("c.dat", "closed") in events or ("c.dat", "created") in events, 5, "events after restart"
        )
    finally:
        w.stop()
