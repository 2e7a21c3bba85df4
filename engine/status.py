"""What ``datauploader status`` (and the tray's menu) shows: every dataset, its state, counts and live progress.

Read-only over the journal, so it works while an upload runs in another process. The JSON shape is versioned
and documented in the README; scripts at facilities parse it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from engine.home import Home
from engine.journal import FAILED, REGISTERED, Journal
from engine.procs import pid_alive
from engine.storage import join_fs

STATUS_VERSION = 1
_STALE = 30.0  # seconds without a progress write after which a run is presumed dead


@dataclass(frozen=True)
class LiveProgress:
    phase: str
    pid: int
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    rate: float
    eta: float | None
    failed: int
    updated: float


@dataclass(frozen=True)
class DatasetStatus:
    id: int
    name: str
    investigation: str | None
    profile: str
    location: str
    catalogue: str
    catalogue_id: str | None
    state: str  # uploading | complete | failed | incomplete
    files_total: int
    files_done: int
    files_failed: int
    bytes_total: int
    bytes_done: int
    by_state: dict[str, int]
    failures: list[dict[str, str]]
    progress: LiveProgress | None
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "investigation": self.investigation,
            "profile": self.profile,
            "location": self.location,
            "catalogue": {"name": self.catalogue, "id": self.catalogue_id},
            "state": self.state,
            "files": {
                "total": self.files_total,
                "done": self.files_done,
                "failed": self.files_failed,
                "pending": self.files_total - self.files_done - self.files_failed,
                "by_state": self.by_state,
            },
            "bytes": {"total": self.bytes_total, "done": self.bytes_done},
            "failures": self.failures,
            "progress": asdict(self.progress) if self.progress else None,
            "created": self.created,
            "updated": self.updated,
        }


def dataset_status(home: Home, *, max_failures: int = 20) -> list[DatasetStatus]:
    if not home.journal_file.exists():
        return []
    out: list[DatasetStatus] = []
    with Journal(home.journal_file) as journal:
        for rec in journal.datasets():
            counts = journal.counts(rec.id)
            p = journal.progress(rec.id)
            live = None
            if p is not None and time.time() - p.updated < _STALE and pid_alive(p.pid):
                live = LiveProgress(
                    phase=p.phase,
                    pid=p.pid,
                    files_done=p.files_done,
                    files_total=p.files_total,
                    bytes_done=p.bytes_done,
                    bytes_total=p.bytes_total,
                    rate=p.rate,
                    eta=p.eta,
                    failed=p.failed,
                    updated=p.updated,
                )
            refused = journal.skipped(rec.id, refused=True, limit=max_failures)
            n_refused = (
                len(journal.skipped(rec.id, refused=True)) if len(refused) == max_failures else len(refused)
            )
            if live is not None:
                state = "uploading"
            elif counts.failed or refused:
                state = "failed"
            elif rec.state == "complete" and counts.done == counts.files:
                state = "complete"
            else:
                state = "incomplete"
            failures = [
                {"path": f.rel, "reason": f.reason or ""}
                for f in journal.failures(rec.id, limit=max_failures)
            ] + [{"path": rel, "reason": reason} for rel, reason in refused]
            failures = failures[:max_failures]
            out.append(
                DatasetStatus(
                    id=rec.id,
                    name=rec.name,
                    investigation=rec.investigation or None,
                    profile=rec.profile,
                    location=join_fs(rec.storage, rec.target),
                    catalogue=rec.catalogue,
                    catalogue_id=rec.catalogue_id,
                    state=state,
                    files_total=counts.files + n_refused,
                    files_done=counts.done,
                    files_failed=counts.by_state.get(FAILED, 0) + n_refused,
                    bytes_total=counts.bytes,
                    bytes_done=counts.bytes_by_state.get(REGISTERED, 0),
                    by_state=dict(counts.by_state),
                    failures=failures,
                    progress=live,
                    created=rec.created,
                    updated=rec.updated,
                )
            )
    return out
