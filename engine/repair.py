"""``datauploader repair``: put a damaged journal aside and rebuild what can be rebuilt, never touching the storage.

The journal is the single source of truth, so losing it must not lose data or create duplicates. Repair keeps the
damaged file (renamed, for the record), salvages every dataset and file row that can still be read from it, and adds
the datasets the local catalogue knows but the journal lost. Salvaged files start again as *discovered*: the next
run of the same command checks each one against the storage — content proven identical (a hash, from the backend
or computed by download) is adopted without a byte moving, its own manifest is recognised, and anything else on
the storage is refused as foreign, never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import DEFAULT_PROFILE, Config, load_config
from engine.home import Home
from engine.journal import DISCOVERED, Journal, JournalDamaged
from engine.storage import join_fs, redact_fs

log = logging.getLogger(__name__)

_CHUNK = 1000


@dataclass
class RepairReport:
    damaged: str | None = None  # why the journal could not be used, if it could not
    moved_to: Path | None = None
    datasets: list[str] = field(default_factory=list)  # recovered dataset names
    files: int = 0
    from_catalogue: list[str] = field(default_factory=list)


def repair(home: Home) -> RepairReport:
    home.ensure()
    report = RepairReport()
    path = home.journal_file
    salvaged: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    if path.exists():
        try:
            with Journal(path) as journal:
                journal.datasets()
                journal.integrity()
        except JournalDamaged as exc:
            report.damaged = str(exc).split(" (", 1)[-1].split(");", 1)[0]
            salvaged = _salvage(path)
            report.moved_to = _move_aside(path)
    config = load_config(home)
    with Journal(path) as journal:
        for row in salvaged[0]:
            if _restore_dataset(journal, row) is not None:
                report.datasets.append(str(row["name"]))
        ids = {d.id for d in journal.datasets()}
        rows = [r for r in salvaged[1] if r.get("dataset_id") in ids]
        report.files = _restore_files(journal, rows)
        report.from_catalogue = _from_local_catalogue(home, config, journal)
    return report


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    path.rename(target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    log.warning("moved the damaged journal to %s", target)
    return target


def _salvage(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every row of ``datasets`` and ``files`` that can still be read, page by page around the damage."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return [], []
    try:
        return list(_rows(db, "datasets")), list(_rows(db, "files"))
    finally:
        db.close()


def _rows(db: sqlite3.Connection, table: str) -> Iterator[dict[str, Any]]:
    try:
        cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
        top = int(db.execute(f"SELECT max(id) FROM {table}").fetchone()[0] or 0)
    except (sqlite3.Error, TypeError, ValueError):
        return
    if not cols:
        return
    for low in range(0, top + 1, _CHUNK):
        try:
            rows = db.execute(
                f"SELECT {', '.join(cols)} FROM {table} WHERE id >= ? AND id < ?", (low, low + _CHUNK)
            ).fetchall()
        except sqlite3.Error:
            continue  # a damaged page: what lies on it is found again by the next run's scan
        for row in rows:
            yield dict(zip(cols, row, strict=True))


def _restore_dataset(journal: Journal, row: dict[str, Any]) -> int | None:
    try:
        meta = json.loads(row.get("meta") or "{}")
        rec = journal.find_dataset(str(row["profile"]), str(row["investigation"] or ""), str(row["name"]))
        if rec is None:
            rec = journal.create_dataset(
                profile=str(row["profile"]),
                investigation=str(row["investigation"] or ""),
                name=str(row["name"]),
                storage=str(row["storage"]),
                target=str(row["target"]),
                catalogue=str(row["catalogue"]),
                description=row.get("description"),
                investigation_description=row.get("investigation_description"),
                meta=meta if isinstance(meta, dict) else {},
            )
        if row.get("catalogue_id") and rec.catalogue_id is None:
            rec = journal.update_dataset(rec.id, catalogue_id=str(row["catalogue_id"]))
    except (KeyError, TypeError, ValueError, sqlite3.Error) as exc:
        log.warning("could not restore dataset row %s: %s", row.get("id"), exc)
        return None
    # Ids are kept where possible so the salvaged files find their dataset.
    if rec.id != row.get("id"):
        with contextlib.suppress(sqlite3.Error), journal.transaction() as db:
            db.execute("UPDATE datasets SET id=? WHERE id=?", (row["id"], rec.id))
    return int(row["id"])


def _restore_files(journal: Journal, rows: list[dict[str, Any]]) -> int:
    """Salvaged files, back to *discovered*: nothing they say about the storage is trusted."""
    now = time.time()
    n = 0
    with journal.transaction() as db:
        for r in rows:
            try:
                cur = db.execute(
                    "INSERT OR IGNORE INTO files (dataset_id, rel, source, size, mtime_ns, state, updated) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (int(r["dataset_id"]), str(r["rel"]), str(r["source"]), int(r["size"]),
                     int(r["mtime_ns"]), DISCOVERED, now),
                )  # fmt: skip
                n += max(0, cur.rowcount)
            except (KeyError, TypeError, ValueError, sqlite3.Error):
                continue
    return n


def _from_local_catalogue(home: Home, config: Config, journal: Journal) -> list[str]:
    """Datasets the local catalogue registered that the journal does not know, under the profile whose storage
    holds them."""
    if not home.catalogue_file.exists():
        return []
    locals_ = [p for p in config.profiles.values() if p.catalogue == "local"]
    found: list[str] = []
    try:
        db = sqlite3.connect(f"file:{home.catalogue_file}?mode=ro", uri=True)
        rows = db.execute(
            "SELECT pid, investigation, name, location, description, investigation_description, meta FROM datasets"
        ).fetchall()
        db.close()
    except sqlite3.Error as exc:
        log.warning("cannot read the local catalogue %s: %s", home.catalogue_file, exc)
        return []
    for pid, investigation, name, location, description, inv_description, meta in rows:
        target = f"{investigation}/{name}" if investigation else name
        profile = next((p for p in locals_ if join_fs(redact_fs(p.storage), target) == location), None)
        storage = redact_fs(profile.storage) if profile is not None else _storage_of(location, target)
        if profile is None and storage is not None and locals_:
            # Uploaded with --storage: the catalogue does not say under which profile, so it goes to the default
            # one if that uses this catalogue (the same command with the same --storage then finds it).
            profile = next((p for p in locals_ if p.name == DEFAULT_PROFILE), locals_[0])
        if profile is None or storage is None:
            continue
        if journal.find_dataset(profile.name, investigation or "", name) is not None:
            continue
        rec = journal.create_dataset(
            profile=profile.name,
            investigation=investigation or "",
            name=name,
            storage=storage,
            target=target,
            catalogue="local",
            description=description,
            investigation_description=inv_description,
            meta=json.loads(meta or "{}"),
        )
        journal.update_dataset(rec.id, catalogue_id=pid)
        found.append(name)
    return found


def _storage_of(location: str, target: str) -> str | None:
    """The storage root of a dataset stored at ``location`` (its folder, ``target`` below the root): the one
    that :func:`join_fs` makes that location of, or None."""
    for joiner in ("/", "\\"):
        tail = target.replace("/", joiner)
        if not location.endswith(tail):
            continue
        head = location[: -len(tail)]
        for root in (head[:-1], head) if head.endswith(joiner) else (head,):
            if root and join_fs(root, target) == location:
                return root
    return None
