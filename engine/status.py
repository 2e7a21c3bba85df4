"""Every dataset the journal knows, with its state, counts and live progress: what ``status`` prints, ``status --json``
emits and the tray shows (all through :meth:`engine.core.Engine.snapshot`).

Read-only over the journal, so it works while runs go on in this or another process (their progress rows are
refreshed at least every few seconds; a row older than 30 s, or whose process is gone, is a run that died). The JSON
shape is versioned and documented in the README; scripts at facilities parse it.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from engine.home import Home
from engine.journal import FAILED, REGISTERED, Journal, JournalDamaged
from engine.model import DatasetState, FailedFile, Mode, Phase, Progress
from engine.procs import pid_alive
from engine.storage import join_fs

STATUS_VERSION = 1
_STALE = 30.0  # seconds without a progress write after which a run is presumed dead
_MAX_FAILURES = 20


def _live(p: Progress | None) -> Progress | None:
    if p is None or time.time() - p.updated >= _STALE or not pid_alive(p.pid):
        return None
    return p


def dataset_states(
    home: Home, *, modes: dict[int, Mode] | None = None, paused: bool = False
) -> list[DatasetState]:
    """``modes`` says which datasets run in this engine (and how); others may be live in another process."""
    if not home.journal_file.exists():
        return []
    modes = modes or {}
    out: list[DatasetState] = []
    try:
        journal = Journal(home.journal_file, readonly=True)
    except (
        sqlite3.OperationalError
    ) as exc:  # a home we may read but not write: still show nothing but the error
        raise JournalDamaged(f"cannot read the journal {home.journal_file}: {exc}") from None
    with journal:
        runs = {dataset_id: mode for dataset_id, mode, _, _ in journal.runs()}
        for rec in journal.datasets():
            counts = journal.counts(rec.id)
            live = _live(journal.progress(rec.id))
            refused = journal.count_refused(rec.id)
            failures = [
                FailedFile(f.rel, f.reason or "") for f in journal.failures(rec.id, limit=_MAX_FAILURES)
            ]
            failures += [
                FailedFile(r, why) for r, why in journal.skipped(rec.id, refused=True, limit=_MAX_FAILURES)
            ]
            skipped = [
                FailedFile(r, why) for r, why in journal.skipped(rec.id, refused=False, limit=_MAX_FAILURES)
            ]
            phase = Phase(live.phase) if live is not None and live.phase in Phase._value2member_map_ else None
            running = live is not None or rec.id in modes
            if running:
                state = (
                    "paused"
                    if paused or phase == Phase.PAUSED
                    else "watching"
                    if phase == Phase.WATCHING
                    else "uploading"
                )
            elif counts.failed or refused:
                state = "failed"
            elif rec.state == "complete" and counts.done == counts.files:
                state = "complete"
            else:
                state = "incomplete"
            raw_mode = modes.get(rec.id) or (runs.get(rec.id) if running else None)
            mode: Mode | None = raw_mode if raw_mode in ("sync", "batch") else None  # type: ignore[assignment]
            out.append(
                DatasetState(
                    id=rec.id,
                    name=rec.name,
                    investigation=rec.investigation or None,
                    profile=rec.profile,
                    location=join_fs(rec.storage, rec.target),
                    catalogue=rec.catalogue,
                    catalogue_id=rec.catalogue_id,
                    mode=mode,
                    running=running,
                    pid=live.pid if live else None,
                    phase=phase,
                    state=state,
                    files_total=counts.files + refused,
                    files_done=counts.done,
                    files_failed=counts.by_state.get(FAILED, 0) + refused,
                    bytes_total=counts.bytes,
                    bytes_done=counts.bytes_by_state.get(REGISTERED, 0),
                    by_state=dict(counts.by_state),
                    rate=live.rate if live else 0.0,
                    eta=live.eta if live else None,
                    failures=tuple(failures[:_MAX_FAILURES]),
                    skipped=tuple(skipped),
                    created=rec.created,
                    updated=rec.updated,
                    live=live,
                )
            )
    return out


def to_json(d: DatasetState) -> dict[str, Any]:
    """The documented ``status --json`` shape of one dataset (version :data:`STATUS_VERSION`)."""
    live = d.live
    return {
        "id": d.id,
        "name": d.name,
        "investigation": d.investigation,
        "profile": d.profile,
        "location": d.location,
        "catalogue": {"name": d.catalogue, "id": d.catalogue_id},
        "state": "uploading" if d.running else d.state,
        "files": {
            "total": d.files_total,
            "done": d.files_done,
            "failed": d.files_failed,
            "pending": d.files_total - d.files_done - d.files_failed,
            "by_state": d.by_state,
        },
        "bytes": {"total": d.bytes_total, "done": d.bytes_done},
        "failures": [{"path": f.path, "reason": f.reason} for f in d.failures],
        "skipped": [{"path": f.path, "reason": f.reason} for f in d.skipped],
        "progress": None
        if live is None
        else {
            "phase": live.phase,
            "pid": live.pid,
            "files_done": live.files_done,
            "files_total": live.files_total,
            "bytes_done": live.bytes_done,
            "bytes_total": live.bytes_total,
            "rate": live.rate,
            "eta": live.eta,
            "failed": live.failed,
            "updated": live.updated,
        },
        "created": d.created,
        "updated": d.updated,
    }
