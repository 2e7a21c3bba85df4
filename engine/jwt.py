"""Reading a JWT's claims without verifying it.

DataUploader never trusts a token's contents for security — the catalogue verifies every request — but it reads
the claims to know *when* the session ends (``exp``) and *who* it belongs to, so it can warn before the token
expires instead of discovering it through a failed registration, and show ``whoami`` without a round trip.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWT (``header.payload.signature``); ValueError if it is not one."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise ValueError("not a JWT (expected three dot-separated parts)")
    body = parts[1]
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a JWT: {exc}") from None
    if not isinstance(payload, dict):
        raise ValueError("not a JWT: the payload is not an object")
    return payload


def expiry(token: str) -> float | None:
    """The ``exp`` claim in epoch seconds, None when the token never expires (or is unreadable)."""
    try:
        exp = claims(token).get("exp")
    except ValueError:
        return None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return float(exp)
    return None
