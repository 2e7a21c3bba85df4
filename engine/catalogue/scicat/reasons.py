"""What went wrong, in words a person can act on: SciCat's validation answers and why a connection failed.

SciCat (backend-next) answers a refused dataset in two shapes: NestJS's ``{"message": [...]}`` list of strings,
and, on its v3 dataset routes, ``message`` as a *JSON-encoded string* of class-validator errors (nested by
property). Shown raw, the second reads as ``'[{"property":"contactEmail",…'``; these helpers turn both into one
line per reason and the field names to fix. A failed connection is classified the same way: refused, unknown
host, no connection, no answer: each points at a different thing to check.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests


def validation_lines(errors: Sequence[Any], prefix: str = "") -> tuple[list[str], list[str]]:
    """class-validator's ValidationError list → (readable lines, field paths)."""
    lines: list[str] = []
    fields: list[str] = []
    for err in errors:
        if not isinstance(err, dict):
            lines.append(str(err))
            continue
        prop = f"{prefix}{err.get('property', '?')}"
        constraints: dict[str, Any] = err["constraints"] if isinstance(err.get("constraints"), dict) else {}
        for message in constraints.values():
            text = str(message)
            lines.append(text if prefix == "" or text.startswith(prop) else f"{prefix}{text}")
        if constraints and prop not in fields:
            fields.append(prop)
        children = err.get("children")
        if isinstance(children, list) and children:
            more, names = validation_lines(children, f"{prop}.")
            lines += more
            fields += [n for n in names if n not in fields]
    return lines, fields


def answer_reasons(payload: Any) -> tuple[list[str], list[str]]:
    """SciCat's reasons in an error answer, as (readable lines, field names)."""
    message = payload.get("message") if isinstance(payload, dict) else None
    if isinstance(message, list):
        lines = [str(m) for m in message]
        return lines, message_fields(lines)
    if isinstance(message, str) and message:
        try:
            decoded = json.loads(message)
        except ValueError:
            decoded = None
        if isinstance(decoded, list):  # POST /datasets: a JSON-encoded list of class-validator errors
            return validation_lines(decoded)
        return [message], message_fields([message])
    return [], []


def message_fields(messages: Sequence[str]) -> list[str]:
    """Field names from class-validator / pydantic style messages ("property foo should not exist",
    "dataFileList.0.size must be a number") — what the user has to fix."""
    fields: list[str] = []
    for m in messages:
        words = m.split()
        if len(words) >= 2 and words[0] == "property":
            name = words[1]
        elif words:
            name = words[0]
        else:
            continue
        if name not in fields:
            fields.append(name)
    return fields


def listing(lines: Sequence[str]) -> str:
    return "".join(f"\n  - {line}" for line in lines) if lines else " (no reason given)"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (requests → urllib3 → socket), each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for nxt in (e.__cause__, e.__context__, getattr(e, "reason", None), *getattr(e, "args", ())):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def unreachable_reason(
    exc: requests.RequestException, url: str, connect_timeout: float, read_timeout: float
) -> str:
    """Why ``url`` could not be asked, in words that say what to check: refused, unknown host, no answer."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    where = f"{host}:{parts.port}" if parts.port else host
    if isinstance(exc, requests.ConnectTimeout):
        return (
            f"{where} did not accept a connection within {connect_timeout:g} s "
            "(the host is down or a firewall drops the connection)"
        )
    if isinstance(exc, requests.ReadTimeout):
        return f"{where} accepted the connection but did not answer within {read_timeout:g} s"
    for e in _causes(exc):
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return f"the host name '{host}' cannot be resolved (DNS); check the url"
        if isinstance(e, ConnectionRefusedError):
            return f"{where} refused the connection: nothing listens there (wrong port, or SciCat is down)"
        if isinstance(e, ssl.SSLError):
            return f"the TLS handshake with {where} failed ({e})"
    return f"{where} is not reachable ({type(exc).__name__})"
