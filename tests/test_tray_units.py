"""The tray's rules without a display: state → icon/tooltip/menu, notification policy, settings file, backend."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from engine import (
    DatasetSealed,
    DatasetState,
    EngineSnapshot,
    FileFailed,
    LoginExpired,
    LoginExpiring,
    Phase,
    StorageReachable,
    StorageUnreachable,
)
from engine.home import resolve_home
from engine.settings_file import ProfileSettings, SettingsError, read_settings, save_settings
from tray import backend
from tray.images import IconState, icon_image
from tray.notifier import Notifier
from tray.notify_policy import Notice, NotificationPolicy
from tray.view import Alerts, Login, tray_view


def ds(id: int, name: str, phase: Phase | None, mode: str = "sync", **kw: object) -> DatasetState:
    values: dict[str, object] = dict(
        id=id,
        name=name,
        investigation=None,
        profile="default",
        location=f"/s/{name}",
        mode=mode,
        running=phase is not None,
        phase=phase,
        state="uploading",
        files_total=40,
        files_done=12,
        files_failed=0,
        bytes_total=4_000_000_000,
        bytes_done=1_200_000_000,
        rate=10_000_000.0,
        eta=300.0,
        failures=(),
        updated=0.0,
        catalogue="local",
        catalogue_id=None,
        pid=None,
        by_state={},
        skipped=(),
        created=0.0,
    )
    values.update(kw)
    return DatasetState(**values)  # type: ignore[arg-type]


def labels(view: object) -> list[tuple[str, bool]]:
    return [(e.label, e.enabled) for e in view.menu if e.label != "-"]  # type: ignore[attr-defined]


def test_idle_menu_has_the_issue_labels() -> None:
    v = tray_view(EngineSnapshot(False, ()), Alerts(), [])
    assert v.state is IconState.IDLE
    assert labels(v) == [
        ("Start sync for dataset…", True),
        ("Upload finished experiment…", True),
        ("Pause uploads", True),
        ("Show activity…", True),
        ("Settings…", True),
        ("Quit", True),
    ]
    assert v.tooltip == "DataUploader — idle"


def test_running_syncs_each_get_a_stop_item_and_the_icon_says_uploading_or_syncing() -> None:
    snap = EngineSnapshot(
        False,
        (
            ds(1, "scan-1", Phase.UPLOADING),
            ds(2, "scan-2", Phase.WATCHING),
            ds(3, "batch-3", Phase.UPLOADING, mode="batch"),
            ds(4, "old", None),
        ),
    )
    v = tray_view(snap, Alerts(), [])
    assert v.state is IconState.UPLOADING
    assert ("Stop sync: scan-1", True) in labels(v) and ("Stop sync: scan-2", True) in labels(v)
    assert not any("batch-3" in label or "old" in label for label, _ in labels(v))
    assert "scan-1: 12/40 files, 1.2/4.0 GB, 10.0 MB/s, 5 min left" in v.tooltip
    watching = tray_view(EngineSnapshot(False, (ds(2, "scan-2", Phase.WATCHING),)), Alerts(), [])
    assert watching.state is IconState.SYNCING
    finishing = tray_view(EngineSnapshot(False, (ds(2, "scan-2", Phase.FINISHING),)), Alerts(), [])
    assert ("Stop sync: scan-2", False) in labels(finishing)


def test_paused_attention_and_login_items() -> None:
    snap = EngineSnapshot(True, (ds(1, "scan-1", Phase.PAUSED),))
    v = tray_view(snap, Alerts(), [Login("facility", None), Login("other", "anna")])
    assert v.state is IconState.PAUSED
    assert ("Resume uploads", True) in labels(v) and ("Pause uploads", True) not in labels(v)
    assert ("Log in…", True) in labels(v) and ("Log out (anna)", True) in labels(v)
    alerts = Alerts(failed={1: 3})
    v = tray_view(snap, alerts, [])
    assert v.state is IconState.ATTENTION and "3 files failed" in v.tooltip
    quitting = tray_view(snap, Alerts(), [], quitting=True)
    assert [
        enabled for label, enabled in labels(quitting) if label != "Quit" and label != "Show activity…"
    ] == [False] * 5  # Start, Upload, Stop sync, Resume, Settings
    assert (
        len(
            tray_view(
                EngineSnapshot(False, tuple(ds(i, f"d{i}", Phase.UPLOADING) for i in range(9))), Alerts(), []
            ).tooltip
        )
        <= 127
    )


def test_every_state_has_a_distinct_icon() -> None:
    images = {s: icon_image(s, 32).tobytes() for s in IconState}
    assert len(set(images.values())) == len(IconState)


def test_permanent_failures_are_grouped_per_dataset_and_transient_ones_never_notify() -> None:
    p = NotificationPolicy(failure_window=180, failure_delay=3)
    for i in range(5):
        assert p.on_event(FileFailed(1, "scan-1", f"f{i}", "denied", permanent=True), 100 + i * 0.1) == []
    assert p.on_event(FileFailed(1, "scan-1", "t", "timeout", permanent=False), 101) == []
    assert p.tick(102) == []
    [n] = p.tick(104)
    assert n.kind == "failed" and "scan-1: 5 files failed — f0 and 4 others: denied" in n.message
    assert p.on_event(FileFailed(1, "scan-1", "g", "denied", permanent=True), 110) == []
    assert p.tick(200) == []  # still inside the window
    [n] = p.tick(284.5)
    assert "1 file failed — g" in n.message
    assert p.tick(400) == []


def test_outage_notifies_only_past_the_threshold_and_once_back() -> None:
    p = NotificationPolicy(outage_threshold=120)
    p.on_event(StorageUnreachable(1, "scan-1", "connection refused"), 0)
    assert p.on_event(StorageReachable(1, "scan-1"), 60) == []  # short: nothing at all
    p.on_event(StorageUnreachable(1, "scan-1", "connection refused"), 100)
    p.on_event(StorageUnreachable(1, "scan-1", "connection refused"), 150)
    assert p.tick(200) == []
    [n] = p.tick(221)
    assert "Cannot reach the storage of scan-1 for 2 min" in n.message
    assert p.tick(400) == []
    [n] = p.on_event(StorageReachable(1, "scan-1"), 500)
    assert n.message == "The storage of scan-1 is reachable again."


def test_login_expiring_and_expired_notify_once_each() -> None:
    p = NotificationPolicy()
    assert p.on_event(LoginExpiring("facility", "anna", 10_000), 10_000 - 3600) == []  # not yet within 30 min
    [n] = p.on_event(LoginExpiring("facility", "anna", 10_000), 10_000 - 1200)
    assert "expires in 20 min" in n.message
    assert p.on_event(LoginExpiring("facility", "anna", 10_000), 10_000 - 600) == []
    [n] = p.on_event(LoginExpired("facility"), 10_001)
    assert "has expired" in n.message
    assert p.on_event(LoginExpired("facility"), 10_010) == []
    p.logged_in("facility")
    assert len(p.on_event(LoginExpired("facility"), 20_000)) == 1


def test_sealed_message_names_dataset_files_and_size() -> None:
    [n] = NotificationPolicy().on_event(DatasetSealed(1, "scan-1", "sync", 3, 2_500_000_000, 10, "sha256"), 0)
    assert n.message == "scan-1 uploaded — 3 files, 2.5 GB, all verified"


def test_a_broken_notification_way_is_skipped_and_never_raises() -> None:
    got: list[Notice] = []

    def broken(_n: Notice) -> None:
        raise RuntimeError("org.freedesktop.Notifications was not provided by any .service files")

    n = Notifier([broken, got.append]).start()
    n.send(Notice("DataUploader", "one", "x"))
    n.send(Notice("DataUploader", "two", "x"))
    n.stop()
    assert [x.message for x in got] == ["one", "two"]
    lonely = Notifier([broken]).start()
    lonely.send(Notice("DataUploader", "three", "x"))
    lonely.stop()
    assert [x.message for x in lonely.sent] == ["three"]


CONFIG = """# facility IT: do not remove the beamline profile
rclone = "/opt/rclone"   # pinned version

[profiles.default]
storage = "/data/raw"  # the big disk
settle = 2

[profiles.beamline]
# shared with the other hutch
storage = "beam:raw"
"""


def test_settings_file_keeps_comments_and_order(tmp_path: Path) -> None:
    home = resolve_home(tmp_path)
    home.config_file.write_text(CONFIG)
    s = read_settings(home, "default")
    assert (s.storage, s.settle, s.catalogue) == ("/data/raw", "2", "local")
    save_settings(
        home,
        ProfileSettings(
            "default",
            "/data/raw2",
            "scicat",
            "https://scicat.example.org/api/v3",
            "08:00,10M 20:00,off",
            "500ms",
            ("scratch/", "*.bak"),
        ),
    )
    text = home.config_file.read_text()
    for comment in ("# facility IT", "# pinned version", "# shared with the other hutch"):
        assert comment in text
    assert text.index("[profiles.default]") < text.index("[profiles.beamline]")
    assert 'storage = "/data/raw2"  # the big disk' in text
    again = read_settings(home, "default")
    assert again.scicat_url == "https://scicat.example.org/api/v3" and again.exclude == ("scratch/", "*.bak")
    assert again.bwlimit == "08:00,10M 20:00,off" and again.settle == "500ms"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"storage": " "}, "storage"),
        ({"catalogue": "scicat", "scicat_url": "scicat.example.org"}, "scicat_url"),
        ({"bwlimit": "10 megabytes"}, "bwlimit"),
        ({"bwlimit": "25:00,10M"}, "bwlimit"),
        ({"settle": "soon"}, "settle"),
        ({"profile": "my profile"}, "profile"),
    ],
)
def test_settings_are_checked_before_anything_is_written(
    tmp_path: Path, change: dict[str, str], field: str
) -> None:
    home = resolve_home(tmp_path)
    home.config_file.write_text(CONFIG)
    values = {"profile": "default", "storage": "/x", **change}
    with pytest.raises(SettingsError) as err:
        save_settings(home, ProfileSettings(**values))  # type: ignore[arg-type]
    assert err.value.field == field
    assert home.config_file.read_text() == CONFIG


def test_new_file_and_profile(tmp_path: Path) -> None:
    home = resolve_home(tmp_path)
    assert read_settings(home).storage == str(home.default_storage)
    save_settings(home, ProfileSettings("default", str(tmp_path / "store"), bwlimit="1M"))
    assert read_settings(home).bwlimit == "1M"


def test_xorg_fallback_is_refused_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("pystray")
    fake.Icon = type("Icon", (), {"__module__": "pystray._xorg"})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pystray", fake)
    monkeypatch.delenv("PYSTRAY_BACKEND", raising=False)
    with pytest.raises(backend.BackendError, match=r"apt install gir1\.2-gtk-3\.0"):
        backend.load_pystray()
    monkeypatch.setenv("PYSTRAY_BACKEND", "xorg")
    assert backend.load_pystray()[1] == "xorg"
