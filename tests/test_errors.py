"""rclone's error messages sorted into wait-and-retry and tell-the-scientist (messages as rclone prints them)."""

from __future__ import annotations

import pytest

from engine.rclone.errors import PERMANENT, TRANSIENT, UNKNOWN, classify


@pytest.mark.parametrize(
    ("message", "kind", "words"),
    [
        (
            'Put "http://127.0.0.1:8080/raw/a.bin": dial tcp 127.0.0.1:8080: connect: connection refused',
            TRANSIENT,
            "not reachable",
        ),
        (
            "failed to open source object: read tcp 127.0.0.1:4242->127.0.0.1:8080: i/o timeout",
            TRANSIENT,
            "not reachable",
        ),
        ("503 Service Unavailable", TRANSIENT, "not reachable"),
        ("couldn't connect SSH: ssh: handshake failed: EOF", TRANSIENT, "not reachable"),
        ("AccessDenied: Access Denied\n\tstatus code: 403, request id: 1", PERMANENT, "refused access"),
        ("open /data/raw/a.bin: permission denied", PERMANENT, "refused access"),
        ("NoSuchBucket: The specified bucket does not exist", PERMANENT, "bucket does not exist"),
        ("write /data/a.bin: no space left on device", PERMANENT, "full or over quota"),
        ("507 Insufficient Storage", PERMANENT, "full or over quota"),
        ("preallocate: file too big for remaining disk space", PERMANENT, "full or over quota"),
        ("mkdir /data/raw/ds: operation not permitted", PERMANENT, "refused access"),
        ("something nobody has seen before", UNKNOWN, "upload failed"),
    ],
)
def test_classify(message: str, kind: str, words: str) -> None:
    c = classify(message)
    assert c.kind == kind
    assert words in c.reason
    assert "rclone:" in c.reason  # rclone's own words are kept for the expert
