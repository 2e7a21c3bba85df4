"""What a run tells the person at the end: one summary built the same way for batch and sync mode.

Every number is defined once, from the journal: files and bytes *done* are registered (verified on storage and in
the catalogue) out of the dataset's total; *uploaded now* counts the distinct files this run verified and their
sizes, never attempts or retried bytes. Every file that is not done for a reason is listed with that reason, so
an exit code of 1 always comes with the files that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.journal import FAILED, VERIFIED, DatasetRecord, Journal


@dataclass
class UploadReport:
    dataset_id: int
    name: str
    location: str
    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0
    files_uploaded: int = 0
    bytes_uploaded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): files not done, and why
    skipped: list[tuple[str, str]] = field(
        default_factory=list
    )  # (path, reason): not data (FIFOs, links, ...)
    problems: list[str] = field(default_factory=list)  # dataset-wide: the manifest, the catalogue entry
    complete: bool = False
    elapsed: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.problems else 0


def build_report(
    journal: Journal,
    rec: DatasetRecord,
    *,
    location: str,
    uploaded: dict[int, int],
    elapsed: float,
    pending_reason: str,
    problems: list[str],
) -> UploadReport:
    """The summary of ``rec`` as the journal has it now. ``uploaded`` maps file id → size of each file this run
    verified; ``pending_reason`` says why verified files are not registered yet (catalogue away, login)."""
    counts = journal.counts(rec.id)
    failed = [
        (f.rel, f.reason or "failed for an unknown reason") for f in journal.iter_files(rec.id, (FAILED,))
    ]
    refused = journal.skipped(rec.id, refused=True)
    failed += refused
    failed += [(f.rel, pending_reason) for f in journal.iter_files(rec.id, (VERIFIED,))]
    return UploadReport(
        dataset_id=rec.id,
        name=rec.name,
        location=location,
        files_total=counts.files + len(refused),
        bytes_total=counts.bytes,
        files_done=counts.done,
        bytes_done=counts.bytes_done,
        files_uploaded=len(uploaded),
        bytes_uploaded=sum(uploaded.values()),
        failed=failed,
        skipped=journal.skipped(rec.id, refused=False),
        problems=problems,
        complete=rec.state == "complete",
        elapsed=elapsed,
    )
