"""The embedded ``local`` catalogue: investigations, datasets and files in SQLite under the home folder.

It lets a scientist use DataUploader with no server at all and gives tests a real (not mocked) catalogue.
It never needs a login: the session is the operating-system user.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from engine.catalogue.base import Credentials, DatasetChanges, DatasetSpec, FileEntry, Investigation, Session
from engine.home import private_dir, private_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS investigations (
    id TEXT PRIMARY KEY, title TEXT, description TEXT, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS datasets (
    pid TEXT PRIMARY KEY,
    investigation TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    location TEXT NOT NULL,
    description TEXT,
    investigation_description TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    owner TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    end_time REAL,
    complete INTEGER NOT NULL DEFAULT 0,
    UNIQUE (investigation, name)
);
CREATE TABLE IF NOT EXISTS files (
    dataset_pid TEXT NOT NULL REFERENCES datasets(pid),
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    sha256 TEXT NOT NULL,
    registered REAL NOT NULL,
    PRIMARY KEY (dataset_pid, path)
);
"""


class LocalCatalogue:
    name = "local"
    needs_login = False
    can_create_investigations = True
    resend_is_free = True  # an upsert in a database on this disk

    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        private_file(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def probe(self) -> None:
        return None  # a file under the home folder: nothing to reach

    def session(self) -> Session:
        return Session(user=getpass.getuser())

    def login(self, credentials: Credentials) -> Session:
        return self.session()  # the operating-system user is the only identity here

    def logout(self) -> None:
        return None

    def list_investigations(self) -> list[Investigation]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, title, description FROM investigations ORDER BY id"
            ).fetchall()
        return [Investigation(*r) for r in rows]

    def get_investigation(self, investigation_id: str) -> Investigation | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, title, description FROM investigations WHERE id=?", (investigation_id,)
            ).fetchone()
        return Investigation(*row) if row else None

    def create_investigation(self, investigation: Investigation) -> Investigation:
        with self._lock:
            self._db.execute(
                "INSERT INTO investigations (id, title, description, created) VALUES (?,?,?,?) "
                "ON CONFLICT (id) DO UPDATE SET description=coalesce(excluded.description, description)",
                (investigation.id, investigation.title, investigation.description, time.time()),
            )
        found = self.get_investigation(investigation.id)
        assert found is not None
        return found

    def validate_dataset(self, spec: DatasetSpec) -> None:
        return None  # the journal already validated names; there is no schema beyond that

    def find_dataset(self, spec: DatasetSpec) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT pid FROM datasets WHERE investigation=? AND name=?",
                (spec.investigation or "", spec.name),
            ).fetchone()
        return str(row[0]) if row else None

    def create_dataset(self, spec: DatasetSpec) -> str:
        existing = self.find_dataset(spec)
        if existing:
            self.update_dataset(existing, spec, None)
            return existing
        pid = f"local/{uuid.uuid4()}"
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO datasets (pid, investigation, name, location, description, "
                "investigation_description, meta, owner, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    pid,
                    spec.investigation or "",
                    spec.name,
                    spec.location,
                    spec.description,
                    spec.investigation_description,
                    json.dumps(spec.meta, sort_keys=True),
                    getpass.getuser(),
                    spec.created or now,
                    now,
                ),
            )
        return pid

    def update_dataset(
        self, dataset_id: str, spec: DatasetSpec, changes: DatasetChanges | None = None
    ) -> None:
        # Nobody curates this catalogue but DataUploader: it mirrors the journal's record whole.
        with self._lock:
            self._db.execute(
                "UPDATE datasets SET location=?, description=?, investigation_description=?, meta=?, updated=? "
                "WHERE pid=?",
                (
                    spec.location,
                    spec.description,
                    spec.investigation_description,
                    json.dumps(spec.meta, sort_keys=True),
                    time.time(),
                    dataset_id,
                ),
            )

    def append_files(self, dataset_id: str, entries: Sequence[FileEntry]) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO files (dataset_pid, path, size, mtime, sha256, registered) VALUES (?,?,?,?,?,?) "
                    "ON CONFLICT (dataset_pid, path) DO UPDATE SET size=excluded.size, mtime=excluded.mtime, "
                    "sha256=excluded.sha256, registered=excluded.registered",
                    [(dataset_id, e.path, e.size, e.mtime, e.sha256, now) for e in entries],
                )
                self._db.execute("UPDATE datasets SET updated=?, complete=0 WHERE pid=?", (now, dataset_id))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def registered(self, dataset_id: str, entries: Sequence[FileEntry]) -> set[str]:
        wanted = {e.path: e.sha256 for e in entries}
        found: set[str] = set()
        paths = list(wanted)
        with self._lock:
            for i in range(0, len(paths), 500):
                chunk = paths[i : i + 500]
                rows = self._db.execute(
                    f"SELECT path, sha256 FROM files WHERE dataset_pid=? AND path IN ({','.join('?' * len(chunk))})",
                    (dataset_id, *chunk),
                ).fetchall()
                found.update(path for path, sha in rows if wanted.get(path) == sha)
        return found

    def finalise(self, dataset_id: str, *, start_time: float, end_time: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE datasets SET complete=1, created=?, end_time=?, updated=? WHERE pid=?",
                (start_time, end_time, time.time(), dataset_id),
            )

    # Read helpers for `status`, tests and the RO-Crate; not part of the adapter protocol.
    def files(self, dataset_id: str) -> list[FileEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT path, size, mtime, sha256 FROM files WHERE dataset_pid=? ORDER BY path", (dataset_id,)
            ).fetchall()
        return [FileEntry(*r) for r in rows]
