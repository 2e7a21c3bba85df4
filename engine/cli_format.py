"""How the CLI writes things down: sizes, durations, the progress line, the run summary, hints for actions.

Only the engine's public API is used (``from engine import …``), like every front end.
"""

from __future__ import annotations

import sys
import time

from engine import Action, ProgressUpdate, RunReport

MAX_LISTED = 50  # failed files listed in full; `datauploader status` lists the rest


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def duration(s: float | None) -> str:
    if s is None:
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def when(ts: float | None) -> str:
    return "never" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def hint(action: Action, profile: str | None) -> str:
    """What to do, as a command line (the tray says the same with its menu)."""
    option = "" if profile in (None, "default") else f" --profile {profile}"
    return {
        Action.LOG_IN: f"run `datauploader login{option}`, then the same command again",
        Action.PICK_INVESTIGATION: f"pick an existing one (`datauploader investigations{option}`)",
        Action.RUN_AGAIN: "run the same command again",
        Action.REPAIR: "run `datauploader repair`",
    }.get(action, "")


class ProgressLine:
    """One self-overwriting line on a terminal; nothing at all when stderr is not a TTY (cron, CI, pipes).
    :meth:`clear` is called before any log message is printed, so warnings never stick to its end."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._width = 0

    def show(self, ev: ProgressUpdate) -> None:
        if not self.enabled:
            return
        text = (
            f"{ev.phase.value}: {ev.files_done}/{ev.files_total} files  {size(ev.bytes_done)}/{size(ev.bytes_total)}"
            f"  {size(ev.rate)}/s  ETA {duration(ev.eta)}" + (f"  {ev.failed} failed" if ev.failed else "")
        )
        pad = max(0, self._width - len(text))
        self._width = len(text)
        sys.stderr.write("\r" + text + " " * pad)
        sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0


def print_report(report: RunReport, profile: str | None) -> int:
    out = sys.stdout
    rate = report.bytes_uploaded / report.elapsed if report.elapsed > 0 else 0.0
    out.write(
        f"dataset '{report.name}': {report.files_done}/{report.files_total} files registered "
        f"({size(report.bytes_done)} of {size(report.bytes_total)}), {report.files_uploaded} uploaded now "
        f"({size(report.bytes_uploaded)} at {size(rate)}/s) -> {report.location}\n"
    )
    for f in report.skipped[:MAX_LISTED]:
        out.write(f"SKIPPED {f.path}: {f.reason}\n")
    if len(report.skipped) > MAX_LISTED:
        out.write(f"... and {len(report.skipped) - MAX_LISTED} more skipped entries\n")
    for f in report.failed[:MAX_LISTED]:
        out.write(f"FAILED {f.path}: {f.reason}\n")
    if len(report.failed) > MAX_LISTED:
        out.write(
            f"... and {len(report.failed) - MAX_LISTED} more failed files; `datauploader status` lists them\n"
        )
    for problem in report.problems:
        out.write(f"ERROR {problem}\n")
    if report.failed:
        todo = hint(report.action, profile) or "fix the cause and run the same command again"
        out.write(f"{plural(len(report.failed), 'file')} failed; {todo}\n")
    elif report.problems:
        out.write("the dataset is not complete; fix the cause and run the same command again\n")
    return report.exit_code
