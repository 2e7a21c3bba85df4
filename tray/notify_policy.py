"""Which engine events become a desktop notification, and how often.

A scientist at the instrument should hear about what needs them and about finished data, not about every
retry: transient failures never notify; permanent failures are grouped (one notification per dataset per
``failure_window``, naming the count and the first file); an outage notifies only when it lasted longer than
``outage_threshold`` (and then once more when it is over); a login warning comes once per expiry.
The policy is pure (time is passed in) and owned by the Tk thread; :mod:`tray.notifier` only delivers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tray._api import (
    Action,
    CatalogueReachable,
    CatalogueUnreachable,
    DatasetFinished,
    DatasetSealed,
    Event,
    FileFailed,
    LoginExpired,
    LoginExpiring,
    StorageReachable,
    StorageUnreachable,
)
from tray.text import human_bytes, human_duration, plural

APP = "DataUploader"
ACTION_WORDS = {
    Action.LOG_IN: "Choose Log in… in the tray menu.",
    Action.PICK_INVESTIGATION: "Pick an existing investigation.",
    Action.RUN_AGAIN: "Start it again to retry.",
    Action.MOVE_FOREIGN_FILE: "Move the other file away on the storage, then choose Retry failed.",
    Action.FIX_SETTINGS: "Fix it in Settings….",
    Action.FREE_SPACE: "Free space on the storage.",
}


@dataclass(frozen=True)
class Notice:
    title: str
    message: str
    kind: str  # "sealed" | "finished" | "failed" | "storage" | "catalogue" | "login" | "resumed" | "error"


@dataclass
class _Failures:
    name: str
    count: int = 0
    first: str = ""
    reason: str = ""
    flush_at: float = 0.0
    quiet_until: float = 0.0


@dataclass
class _Outage:
    what: str  # "storage for scan-001" / "the catalogue of profile beamline"
    since: float
    reason: str
    notified: bool = False


@dataclass
class NotificationPolicy:
    outage_threshold: float = 120.0
    failure_window: float = 180.0
    failure_delay: float = 3.0  # gather a burst of failures into the first notification
    login_warning: float = 1800.0

    _failures: dict[int, _Failures] = field(default_factory=dict)
    _outages: dict[str, _Outage] = field(default_factory=dict)
    _login_warned: dict[str, float] = field(default_factory=dict)  # profile -> expiry warned about
    _login_expired: set[str] = field(default_factory=set)
    _sealed: set[int] = field(default_factory=set)

    def on_event(self, ev: Event, now: float) -> list[Notice]:
        if isinstance(ev, DatasetSealed):
            self._sealed.add(ev.dataset_id)
            verified = "all verified" if ev.verification != "size" else "all verified (by size)"
            return [
                Notice(
                    APP,
                    f"{ev.name} uploaded — {plural(ev.files, 'file')}, {human_bytes(ev.bytes)}, {verified}",
                    "sealed",
                )
            ]
        if isinstance(ev, DatasetFinished):
            return self._finished(ev, now)
        if isinstance(ev, FileFailed):
            if ev.permanent:
                self._failed(ev, now)
            return []
        if isinstance(ev, StorageUnreachable):
            self._outages.setdefault(
                f"s{ev.dataset_id}", _Outage(f"the storage of {ev.name}", now, ev.reason)
            )
            return []
        if isinstance(ev, CatalogueUnreachable):
            self._outages.setdefault(
                f"c{ev.profile}", _Outage(f"the catalogue ({ev.profile})", now, ev.reason)
            )
            return []
        if isinstance(ev, StorageReachable):
            return self._back(f"s{ev.dataset_id}")
        if isinstance(ev, CatalogueReachable):
            return self._back(f"c{ev.profile}")
        if isinstance(ev, LoginExpiring):
            left = ev.expires - now
            if left > self.login_warning or self._login_warned.get(ev.profile) == ev.expires:
                return []
            self._login_warned[ev.profile] = ev.expires
            self._login_expired.discard(ev.profile)
            return [
                Notice(
                    APP,
                    f"Your login to {ev.profile} ({ev.user}) expires in {human_duration(left)}. "
                    f"{ACTION_WORDS[Action.LOG_IN]}",
                    "login",
                )
            ]
        if isinstance(ev, LoginExpired):
            if ev.profile in self._login_expired:
                return []
            self._login_expired.add(ev.profile)
            return [
                Notice(
                    APP,
                    f"Your login to {ev.profile} has expired: uploads go on, registrations wait. "
                    f"{ACTION_WORDS[Action.LOG_IN]}",
                    "login",
                )
            ]
        return []

    def logged_in(self, profile: str) -> None:
        """A new login: the next expiry (or expiry warning) of that profile notifies again."""
        self._login_expired.discard(profile)
        self._login_warned.pop(profile, None)

    def tick(self, now: float) -> list[Notice]:
        """Notices that are due by time alone: grouped failures, outages past the threshold."""
        out = []
        for f in self._failures.values():
            if f.count and now >= f.flush_at:
                out.append(self._failure_notice(f))
                f.count, f.first, f.reason = 0, "", ""
                f.quiet_until = now + self.failure_window
        for o in self._outages.values():
            if not o.notified and now - o.since >= self.outage_threshold:
                o.notified = True
                out.append(
                    Notice(
                        APP,
                        f"Cannot reach {o.what} for {human_duration(now - o.since)}: {o.reason}. "
                        "Uploads continue by themselves when it is back.",
                        "storage" if o.what.startswith("the storage") else "catalogue",
                    )
                )
        return out

    # ---------------------------------------------------------------------------------------------------------

    def _failed(self, ev: FileFailed, now: float) -> None:
        f = self._failures.setdefault(ev.dataset_id, _Failures(ev.name))
        if f.count == 0:
            f.first, f.reason = ev.path, ev.reason
            f.flush_at = max(now + self.failure_delay, f.quiet_until)
        f.count += 1

    @staticmethod
    def _failure_notice(f: _Failures) -> Notice:
        more = f" and {plural(f.count - 1, 'other')}" if f.count > 1 else ""
        return Notice(
            APP,
            f"{f.name}: {plural(f.count, 'file')} failed — {f.first}{more}: {f.reason}. "
            "See Show activity… in the tray menu.",
            "failed",
        )

    def _finished(self, ev: DatasetFinished, now: float) -> list[Notice]:
        out = []
        f = self._failures.get(ev.dataset_id)
        if f is not None and f.count:  # say it now rather than after the dataset is gone
            out.append(self._failure_notice(f))
            f.count = 0
            f.quiet_until = now + self.failure_window
        for key in (f"s{ev.dataset_id}",):
            self._outages.pop(key, None)
        if ev.error:
            hint = ACTION_WORDS.get(ev.action, "")
            out.append(Notice(APP, f"{ev.name} could not run: {ev.error}. {hint}".strip(), "error"))
        elif ev.report is not None and ev.dataset_id not in self._sealed and not ev.cancelled:
            r = ev.report
            if r.failed:
                out.append(
                    Notice(
                        APP,
                        f"{ev.name} finished: {r.files_done} of {plural(r.files_total, 'file')} uploaded, "
                        f"{len(r.failed)} failed. See Show activity….",
                        "finished",
                    )
                )
            elif not r.complete:
                out.append(
                    Notice(
                        APP,
                        f"{ev.name} stopped: {r.files_done} of {plural(r.files_total, 'file')} done.",
                        "finished",
                    )
                )
        self._sealed.discard(ev.dataset_id)
        return out

    def _back(self, key: str) -> list[Notice]:
        o = self._outages.pop(key, None)
        if o is None or not o.notified:
            return []
        return [Notice(APP, f"{o.what[0].upper()}{o.what[1:]} is reachable again.", o.what.split()[1])]
