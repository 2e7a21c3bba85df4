"""Waiting between retries: exponential back-off with jitter, so many uploaders do not hammer a recovering server
in step, capped so a long outage is still noticed within minutes of its end."""

from __future__ import annotations

import random

BACKOFF_FIRST = 2.0
BACKOFF_MAX = 300.0


def backoff(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1``: 2 s doubling to 5 min, ±20 %."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0**attempt) * random.uniform(0.8, 1.2)
