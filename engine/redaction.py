"""Masking secrets in text that people read: logs, status output, the catalogue's record of where data went.

Connection strings carry passwords (``:webdav,url=…,pass=…:``), URLs carry ``user:password@``, catalogue calls carry
tokens. ``***`` replaces the secret value only, never what follows it: ``pass=***:/raw/ds`` keeps the path, and a
message *about* a password ("couldn't decrypt password: input too short") is left alone.
"""

from __future__ import annotations

import re

# Only the secret itself is masked, never what follows it: `pass=***:/raw/ds` keeps the path, and "password: too
# short" (an error about a password, with no password in it) is left alone.
_SECRETS = (
    # key=value in rclone connection strings, URLs and command lines
    re.compile(r"(?i)(\b[a-z0-9_]*(?:pass(?:word)?|secret|token|key)=)('[^']*'|\"[^\"]*\"|[^'\"\s,:&]+)"),
    # "key": "value" in JSON
    re.compile(r'(?i)("[a-z0-9_]*(?:pass(?:word)?|secret|token)"\s*:\s*)("[^"]*")'),
    # HTTP authorization headers
    re.compile(r"(?i)(authorization:\s*(?:bearer|basic)\s+)(\S+)"),
    # user:password@ in URLs
    re.compile(r"(//[^/:@\s]+:)([^@/\s]+)(?=@)"),
)


def redact(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text
