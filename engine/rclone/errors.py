"""Sorting rclone's error messages into "wait and retry" and "tell the scientist", in words they understand.

rclone reports backend failures as free text (HTTP status lines, Go network errors, S3 error codes), so the
classification is by pattern. Anything not recognised counts as *unknown*: retried a few times, then failed
with rclone's own words, so an unexpected error never loops forever and never disappears.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TRANSIENT = "transient"
PERMANENT = "permanent"
UNKNOWN = "unknown"


@dataclass
class Classified:
    """An rclone error sorted by what to do about it (``kind``), and the sentence to show for it."""

    kind: str
    reason: str  # what to show the user: a plain sentence, then rclone's message
    full: bool = False  # the storage is full: permanent for a batch run, worth waiting for in sync mode


# Pattern texts, compiled (and cached by ``re``) at the first error: most runs meet none, and compiling these
# cost ~4 ms of every start-up.
_FULL = (
    r"quota|insufficient storage|\b507\b|no space left|disk full|QuotaExceeded|EntityTooLarge|"
    r"preallocate|file too large|file too big|not enough space|ENOSPC|EDQUOT"
)
_FULL_REASON = "the storage is full or over quota; free space or ask the storage admins"


_PERMANENT: list[tuple[str, str]] = [
    (
        r"NoSuchBucket|bucket does not exist|bucket not found",
        "the bucket does not exist on the storage; check the profile's storage path",
    ),
    (
        r"permission denied|operation not permitted|access ?denied|\b403\b|forbidden|\b401\b|unauthori[sz]ed|"
        r"InvalidAccessKeyId|SignatureDoesNotMatch|authentication failed|unable to authenticate",
        "the storage refused access; check the account and its rights in the profile",
    ),
    (
        r"file name too long|name too long|invalid (file )?name|illegal character",
        "the storage does not accept this file name; rename the file",
    ),
    (
        r"read-only file system|is a directory|not a directory",
        "the storage cannot write at this path; check the profile's storage path",
    ),
]

_TRANSIENT = (
    r"connection refused|connection reset|broken pipe|\bEOF\b|i/o timeout|timeout|timed out|deadline exceeded|"
    r"no route to host|network is unreachable|temporary failure|try again|too many requests|\b429\b|"
    r"\b50[0234]\b|service unavailable|bad gateway|internal server error|server closed|TLS handshake|"
    r"no such host|daemon stopped|cannot reach the rclone daemon|job not found|SlowDown|RequestTimeout"
)


def classify(message: str) -> Classified:
    text = " ".join(message.split())
    if re.search(_FULL, text, re.I):
        return Classified(PERMANENT, f"{_FULL_REASON} (rclone: {text})", full=True)
    for pattern, sentence in _PERMANENT:
        if re.search(pattern, text, re.I):
            return Classified(PERMANENT, f"{sentence} (rclone: {text})")
    if re.search(_TRANSIENT, text, re.I):
        return Classified(TRANSIENT, f"the storage was not reachable (rclone: {text})")
    return Classified(UNKNOWN, f"upload failed (rclone: {text})")
