"""The summary of a run, built the same way for batch and sync mode, from the journal (see
:class:`engine.model.RunReport` for what each number means)."""

from __future__ import annotations

from engine.journal import FAILED, VERIFIED, DatasetRecord, Journal
from engine.model import FailedFile, RunReport


def build_report(
    journal: Journal,
    rec: DatasetRecord,
    *,
    location: str,
    uploaded: dict[int, int],
    elapsed: float,
    pending_reason: str,
    problems: list[str],
) -> RunReport:
    """``uploaded`` maps file id → size of each file this run verified; ``pending_reason`` says why verified files
    are not registered yet (catalogue away, login)."""
    counts = journal.counts(rec.id)
    failed = [
        FailedFile(f.rel, f.reason or "failed for an unknown reason")
        for f in journal.iter_files(rec.id, (FAILED,))
    ]
    refused = [FailedFile(rel, reason) for rel, reason in journal.skipped(rec.id, refused=True)]
    pending = [
        FailedFile(f.rel, pending_reason, permanent=False) for f in journal.iter_files(rec.id, (VERIFIED,))
    ]
    return RunReport(
        dataset_id=rec.id,
        name=rec.name,
        location=location,
        files_total=counts.files + len(refused),
        files_done=counts.done,
        bytes_total=counts.bytes,
        bytes_done=counts.bytes_done,
        files_uploaded=len(uploaded),
        bytes_uploaded=sum(uploaded.values()),
        failed=tuple(failed + refused + pending),
        skipped=tuple(FailedFile(rel, reason) for rel, reason in journal.skipped(rec.id, refused=False)),
        problems=tuple(problems),
        complete=rec.state == "complete",
        elapsed=elapsed,
    )
