"""What the tray shows for a given engine state: icon, tooltip and menu, as plain data.

Kept free of pystray and Tk so the rules ("which items are enabled while paused?") are unit-tested without a
display; :mod:`tray.menu` turns the :class:`MenuEntry` list into pystray items.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tray._api import DatasetState, EngineSnapshot, Phase
from tray.images import IconState
from tray.text import human_bytes, human_duration, human_rate

# Labels exactly as issue 12 names them.
START_SYNC = "Start sync for dataset…"
UPLOAD = "Upload finished experiment…"
STOP_SYNC = "Stop sync: {name}"
PAUSE = "Pause uploads"
RESUME = "Resume uploads"
ACTIVITY = "Show activity…"
LOG_IN = "Log in…"
LOG_OUT = "Log out ({user})"
SETTINGS = "Settings…"
QUIT = "Quit"

SEPARATOR = "-"
TOOLTIP_MAX = 127  # Windows' tooltip limit (NOTIFYICONDATA.szTip is 128 with the NUL)

_MOVING = {
    Phase.STARTING,
    Phase.SCANNING,
    Phase.CATCHING_UP,
    Phase.UPLOADING,
    Phase.RETRYING,
    Phase.FINISHING,
}


@dataclass(frozen=True)
class MenuEntry:
    """One menu line; ``action`` names what :class:`tray.app.TrayApp` does, ``arg`` what it does it to."""

    label: str
    action: str
    enabled: bool = True
    arg: int | str | None = None


@dataclass
class Alerts:
    """Reasons for the attention icon, kept by the app from engine events until resolved or looked at."""

    failed: dict[int, int] = field(default_factory=dict)  # dataset id -> permanent failures not yet looked at
    login_expired: set[str] = field(default_factory=set)  # profiles
    storage_away: set[int] = field(default_factory=set)  # dataset ids
    catalogue_away: set[str] = field(default_factory=set)  # profiles

    def any(self) -> bool:
        return bool(self.failed or self.login_expired or self.storage_away or self.catalogue_away)

    def reasons(self) -> list[str]:
        out = []
        if self.failed:
            out.append(f"{sum(self.failed.values())} files failed")
        if self.login_expired:
            out.append("login expired: " + ", ".join(sorted(self.login_expired)))
        if self.storage_away:
            out.append("storage unreachable")
        if self.catalogue_away:
            out.append("catalogue unreachable")
        return out


@dataclass(frozen=True)
class Login:
    """A profile whose catalogue needs a login, and who is logged in there (None: nobody)."""

    profile: str
    user: str | None


@dataclass(frozen=True)
class TrayView:
    state: IconState
    tooltip: str
    menu: tuple[MenuEntry, ...]


def running(snapshot: EngineSnapshot) -> list[DatasetState]:
    return [d for d in snapshot.datasets if d.running]


def icon_state(snapshot: EngineSnapshot, alerts: Alerts) -> IconState:
    """Attention beats paused beats uploading beats syncing beats idle: the most urgent thing shows."""
    if alerts.any():
        return IconState.ATTENTION
    if snapshot.paused:
        return IconState.PAUSED
    live = running(snapshot)
    if any(d.phase in _MOVING for d in live):
        return IconState.UPLOADING
    if live:
        return IconState.SYNCING
    return IconState.IDLE


def dataset_line(d: DatasetState) -> str:
    """``scan-001: 12/40 files, 1.2/4.0 GB, 10 MB/s, 5 min left``: progress of one running dataset."""
    parts = [f"{d.files_done}/{d.files_total} files", f"{human_bytes(d.bytes_done, d.bytes_total)}"]
    if d.phase in _MOVING and d.rate > 0:
        parts.append(human_rate(d.rate))
        if d.eta is not None:
            parts.append(f"{human_duration(d.eta)} left")
    if d.files_failed:
        parts.append(f"{d.files_failed} failed")
    phase = f" ({d.phase.value})" if d.phase is not None and d.phase not in (Phase.UPLOADING,) else ""
    return f"{d.name}{phase}: " + ", ".join(parts)


_STATE_WORDS = {
    IconState.IDLE: "idle",
    IconState.SYNCING: "watching for new files",
    IconState.UPLOADING: "uploading",
    IconState.PAUSED: "paused",
    IconState.ATTENTION: "needs attention",
}


def tooltip(snapshot: EngineSnapshot, alerts: Alerts, state: IconState) -> str:
    lines = [f"DataUploader — {_STATE_WORDS[state]}"]
    if state is IconState.ATTENTION:
        lines.append("; ".join(alerts.reasons()))
    lines += [dataset_line(d) for d in running(snapshot)]
    text = "\n".join(lines)
    return text if len(text) <= TOOLTIP_MAX else text[: TOOLTIP_MAX - 1] + "…"


def menu(snapshot: EngineSnapshot, logins: list[Login], *, quitting: bool = False) -> tuple[MenuEntry, ...]:
    """The right-click menu; everything is in it because the appindicator backend has no left-click."""
    live = not quitting
    entries = [
        MenuEntry(START_SYNC, "start_sync", live),
        MenuEntry(UPLOAD, "upload", live),
    ]
    syncs = [d for d in running(snapshot) if d.mode == "sync"]
    if syncs:
        entries.append(MenuEntry(SEPARATOR, "", False))
    for d in syncs:
        stoppable = live and d.phase not in (Phase.FINISHING, Phase.DONE, Phase.STOPPED, Phase.FAILED)
        entries.append(MenuEntry(STOP_SYNC.format(name=d.name), "stop_sync", stoppable, d.id))
    entries.append(MenuEntry(SEPARATOR, "", False))
    if snapshot.paused:
        entries.append(MenuEntry(RESUME, "resume", live))
    else:
        entries.append(MenuEntry(PAUSE, "pause", live))
    entries.append(MenuEntry(ACTIVITY, "activity", True))
    if logins:
        if any(lg.user is None for lg in logins):
            entries.append(MenuEntry(LOG_IN, "login", live))
        for lg in logins:
            if lg.user is not None:
                entries.append(MenuEntry(LOG_OUT.format(user=lg.user), "logout", live, lg.profile))
    entries.append(MenuEntry(SETTINGS, "settings", live))
    entries.append(MenuEntry(SEPARATOR, "", False))
    entries.append(MenuEntry(QUIT, "quit", True))
    return tuple(entries)


def tray_view(
    snapshot: EngineSnapshot, alerts: Alerts, logins: list[Login], *, quitting: bool = False
) -> TrayView:
    state = icon_state(snapshot, alerts)
    return TrayView(state, tooltip(snapshot, alerts, state), menu(snapshot, logins, quitting=quitting))
