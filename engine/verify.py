"""``datauploader verify``: is what the journal says DataUploader stored still on the storage, unchanged?

An upload is verified once, when it lands; afterwards someone may overwrite, truncate or delete a stored copy, and a
re-run of the upload would not notice (it trusts the journal). This re-checks every done file of a dataset against
the storage with the hash each file was verified with when it landed (xxh128 or sha256 on a folder, SHA-1 on SFTP,
MD5 on S3), otherwise size and modification time — or, with ``download``, a sha256 computed by reading every file
back, which proves content on any backend at the cost of a full read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from engine.config import Profile, load_config
from engine.errors import UsageError
from engine.home import Home
from engine.journal import REGISTERED, VERIFIED, DatasetRecord, FileRecord, Journal
from engine.rclone.binary import find_rclone
from engine.rclone.daemon import RcloneDaemon
from engine.storage import RemoteFile, Storage, redact_fs

log = logging.getLogger(__name__)

MTIME_SLACK = 0.001  # seconds: both times come from the same backend listing, only float rounding differs


@dataclass
class VerifyResult:
    dataset: str
    location: str
    method: str  # hashes compared ("xxh128", "sha256 and xxh128"), "size and time", "sha256 (read back)"
    checked: int = 0
    differences: list[tuple[str, str]] = field(default_factory=list)  # (path, what is wrong)


def verify(home: Home, *, dataset: str | None = None, download: bool = False) -> list[VerifyResult]:
    """Check every done file of every dataset (or of ``dataset``) against the storage."""
    if not home.journal_file.exists():
        return []
    config = load_config(home)
    results: list[VerifyResult] = []
    with Journal(home.journal_file) as journal:
        records = [r for r in journal.datasets() if dataset is None or r.name == dataset]
        if dataset is not None and not records:
            raise UsageError(f"no dataset named '{dataset}' in the journal; `datauploader status` lists them")
        daemons: dict[str, RcloneDaemon] = {}
        try:
            for rec in records:
                profile = config.profiles.get(rec.profile)
                if profile is None:
                    raise UsageError(
                        f"dataset '{rec.name}' was uploaded with profile '{rec.profile}', which the config no "
                        "longer has; add it back to verify the dataset"
                    )
                key = str(profile.rclone_config)
                if key not in daemons:
                    daemons[key] = RcloneDaemon(
                        find_rclone(config.rclone), config_file=profile.rclone_config, run_dir=home.run_dir
                    )
                storage = Storage(
                    daemons[key],
                    storage_root(rec, profile),
                    run_dir=home.run_dir,
                    local_verify=profile.local_verify,
                )
                results.append(_verify_dataset(journal, storage, rec, download))
        finally:
            for daemon in daemons.values():
                daemon.stop()
    return results


def storage_root(rec: DatasetRecord, profile: Profile) -> str:
    """The storage root the dataset was uploaded to: its profile's, or the one ``--storage`` named for the run
    (the journal keeps it, with any secret in it masked)."""
    if rec.storage == redact_fs(profile.storage):
        return profile.storage
    if "***" not in rec.storage:
        return rec.storage
    raise UsageError(
        f"dataset '{rec.name}' was uploaded to {rec.storage}; DataUploader does not keep the secret of that "
        "connection string: name the storage as an rclone remote or in a profile to verify it"
    )


def _verify_dataset(journal: Journal, storage: Storage, rec: DatasetRecord, download: bool) -> VerifyResult:
    info = storage.probe(rec.target)
    fs = storage.fs(rec.target)
    files = [f for f in journal.iter_files(rec.id, (VERIFIED, REGISTERED)) if f.stored_size is not None]
    # Each file is checked with the hash it was verified with when uploaded: a local folder's copies made by an
    # earlier release carry sha256, later ones xxh128 (or what the profile's local_verify asks for).
    by_hash: dict[str | None, list[str]] = {}
    for f in files:
        kind = None if download else f.stored_hash_kind
        by_hash.setdefault(kind if kind in info.hashes else None, []).append(f.rel)
    kinds = sorted(k for k in by_hash if k)
    method = "sha256 (read back)" if download else " and ".join(kinds) or "size and time"
    if not download and None in by_hash and kinds:
        method += " (size and time where none was stored)"
    result = VerifyResult(rec.name, storage.display_fs(rec.target), method, checked=len(files))
    remote: dict[str, RemoteFile] = {}
    for kind, rels in by_hash.items():
        remote.update(storage.list(fs, rels, kind, mod_times=kind is None))
    sums = storage.hashsum(fs, [f.rel for f in files if f.rel in remote]) if download else {}
    for f in files:
        problem = _compare(f, remote.get(f.rel), sums.get(f.rel), download)
        if problem:
            result.differences.append((f.rel, problem))
    log.info("verify %s: %d files by %s, %d differ", rec.name, len(files), method, len(result.differences))
    return result


def _compare(f: FileRecord, r: RemoteFile | None, read_back: str | None, download: bool) -> str | None:
    if r is None:
        return "missing on the storage"
    if r.size != f.stored_size:
        return f"size on the storage is {r.size} bytes, DataUploader stored {f.stored_size}"
    if download:
        if read_back != (f.stored_sha256 or f.sha256):
            return "content on the storage differs from what DataUploader stored (sha256 read back)"
        return None
    if f.stored_hash and r.hash:
        kind = f.stored_hash_kind
        if f"{kind}:{r.hash}" != f.stored_hash:
            return f"content on the storage differs from what DataUploader stored ({kind} checksum)"
        return None
    if f.stored_mtime is not None and r.mtime is not None and abs(r.mtime - f.stored_mtime) > MTIME_SLACK:
        return "modified on the storage after DataUploader stored it (same size; --download compares the content)"
    return None
