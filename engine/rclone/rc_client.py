"""A minimal JSON-over-HTTP client for the rclone daemon on loopback.

The standard library's ``http.client`` is all this needs (POST a JSON body with basic auth to 127.0.0.1, read
JSON back), and it keeps ``requests`` — about 75 ms of imports — out of every command-line run that does not talk
to a catalogue server. One keep-alive connection per thread, because the upload lanes call concurrently.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
from typing import Any


class RcTransportError(Exception):
    """The daemon could not be reached or hung up (not an rclone error answer)."""


class RcClient:
    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        self.host, self.port = host, port
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _conn(self, timeout: float | None) -> tuple[http.client.HTTPConnection, bool]:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        reused = conn is not None
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, reused

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)

    def post(self, path: str, params: dict[str, Any], timeout: float | None) -> tuple[int, str, bytes]:
        """(status, reason, body). A keep-alive connection the daemon closed meanwhile is retried once."""
        body = json.dumps(params).encode()
        for attempt in (1, 2):
            conn, reused = self._conn(timeout)
            try:
                conn.request("POST", "/" + path, body=body, headers=self._headers)
                resp = conn.getresponse()
                return resp.status, resp.reason, resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                stale = reused and isinstance(
                    exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                )
                if attempt == 1 and stale:
                    continue
                raise RcTransportError(str(exc) or type(exc).__name__) from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
