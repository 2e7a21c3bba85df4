"""Seeded randomness and a record of every trial, so any failing trial can be replayed exactly.

One seed per pytest session (``DATAUPLOADER_FAULT_SEED`` to replay one); each trial draws from its own
``random.Random`` derived from the seed, the fault and the trial number, so replaying one trial does not
depend on which other trials ran. How many trials each randomised fault runs is its CI default unless
``DATAUPLOADER_FAULT_TRIALS`` says otherwise. With ``DATAUPLOADER_FAULT_LOG=FILE`` every trial appends one JSON
line (fault, trial, seed, moments, outcome) — the raw material of docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

SEED_ENV = "DATAUPLOADER_FAULT_SEED"
TRIALS_ENV = "DATAUPLOADER_FAULT_TRIALS"
LOG_ENV = "DATAUPLOADER_FAULT_LOG"

SEED = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1, 10**9))


def trials(default: int) -> int:
    """The number of trials of one randomised fault: ``DATAUPLOADER_FAULT_TRIALS`` or the CI default."""
    raw = os.environ.get(TRIALS_ENV)
    return max(1, int(raw)) if raw else default


def split(total: int, ways: int) -> list[int]:
    """``total`` trials shared as evenly as possible between ``ways`` variants (e.g. local and WebDAV)."""
    return [total // ways + (1 if i < total % ways else 0) for i in range(ways)]


@dataclass
class Trial:
    """One trial of one fault: its random source and what happened, printed (pytest shows it on failure)."""

    fault: str
    index: int
    seed: int = SEED
    events: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:{self.fault}:{self.index}")
        print(f"[{self.fault} #{self.index}] replay with {SEED_ENV}={self.seed}")

    def note(self, what: str) -> None:
        """Something that happened (a kill, a restart), with its moment since the trial started."""
        line = f"t={time.monotonic() - self.started:7.3f}s {what}"
        self.events.append(line)
        print(f"[{self.fault} #{self.index}] {line}")

    def __str__(self) -> str:
        return f"{self.fault} #{self.index} ({SEED_ENV}={self.seed}): " + "; ".join(self.events)

    @contextmanager
    def running(self) -> Iterator[Trial]:
        """Record the trial's outcome (pass, or the first line of what failed), then let any failure through."""
        try:
            yield self
        except BaseException as exc:
            text = str(exc).strip() or type(exc).__name__
            self.record(f"fail: {text.splitlines()[0][:300]}", detail=text[-5000:])
            raise
        self.record("pass")

    def record(self, outcome: str, **extra: Any) -> None:
        """Print this trial's outcome and append it to the fault log (when one is asked for)."""
        print(f"[{self.fault} #{self.index}] outcome: {outcome}")
        path = os.environ.get(LOG_ENV)
        if path:
            entry = {
                "fault": self.fault,
                "trial": self.index,
                "seed": self.seed,
                "events": self.events,
                "outcome": outcome,
                "seconds": round(time.monotonic() - self.started, 3),
                **extra,
            }
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
