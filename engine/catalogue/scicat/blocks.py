"""A dataset's files are SciCat origdatablocks: read once per run into an index, appended, and rewritten in place
when a file changed, so every path is listed once with its current checksum."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from engine.catalogue.base import CatalogueError, FileEntry
from engine.catalogue.scicat.api import SciCatApi
from engine.catalogue.scicat.values import chunks, iso

log = logging.getLogger(__name__)

INDEX_IDLE = 300.0  # an index unused this long is read from SciCat again (people edit datasets too)
BLOCK_PAGE_FILES = 20_000  # about this many file entries per page when reading a dataset's origdatablocks
DATA_FILE_KEYS = ("path", "size", "time", "chk", "uid", "gid", "perm", "type")  # what a block entry may hold


@dataclass
class Index:
    """What a dataset's origdatablocks list: path → (block id, checksum, size), and the true totals."""

    entries: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    size: int = 0
    files: int = 0
    used: float = field(default_factory=time.monotonic)

    def add(self, block_id: str, files: Sequence[dict[str, Any]], block_size: int) -> None:
        for f in files:
            path = str(f.get("path"))
            self.entries[path] = (block_id, str(f.get("chk") or ""), int(f.get("size") or 0))
        self.size += block_size
        self.files += len(files)


class FileBlocks:
    def __init__(self, api: SciCatApi) -> None:
        self.api = api
        self._indexes: dict[str, Index] = {}

    def _pages(self, dataset_id: str) -> Iterator[dict[str, Any]]:
        """Every origdatablock of the dataset, paged through the filterable route (the dataset's own route stops
        at 100 blocks). Pages are sized to hold about BLOCK_PAGE_FILES file entries."""
        skip, limit = 0, 20
        while True:
            limits: dict[str, Any] = {"limit": limit, "skip": skip}
            if self.api.settings.api == "v4":
                limits["sort"] = {"_id": "asc"}
            else:
                limits["order"] = "_id:asc"
            flt = json.dumps({"where": {"datasetId": dataset_id}, "limits": limits})
            found = self.api.call("GET", self.api.blocks_url(), params={"filter": flt}) or []
            page = [b for b in found if isinstance(b, dict)]
            yield from page
            if len(page) < limit:
                return
            skip += len(page)
            per_block = max(1, sum(len(b.get("dataFileList") or []) for b in page) // len(page))
            limit = max(1, min(1000, BLOCK_PAGE_FILES // per_block))

    def index_for(self, dataset_id: str, current: dict[str, Any] | None = None) -> Index:
        """What the dataset lists, read from SciCat once per run. Reading the dataset first makes sure the login
        is still accepted: an anonymous caller would be shown no blocks at all, not an error."""
        index = self._indexes.get(dataset_id)
        if index is not None and time.monotonic() - index.used < INDEX_IDLE:
            index.used = time.monotonic()
            return index
        if current is None:
            self.api.get_dataset(dataset_id)
        index = Index()
        for block in self._pages(dataset_id):
            files = [f for f in block.get("dataFileList") or [] if isinstance(f, dict)]
            index.add(str(block.get("_id")), files, int(block.get("size") or 0))
        self._indexes[dataset_id] = index
        return index

    def body(self, dataset_id: str, entries: Sequence[FileEntry]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "size": sum(e.size for e in entries),
            "chkAlg": "sha256",
            "dataFileList": [
                {"path": e.path, "size": e.size, "time": iso(e.mtime), "chk": e.sha256} for e in entries
            ],
        }
        if self.api.settings.api == "v4":
            body["datasetId"] = dataset_id  # v4 blocks are top-level; v3 takes the pid from the path and
            # refuses a datasetId in the body
        return body

    def append(self, dataset_id: str, entries: Sequence[FileEntry]) -> bool:
        """New paths go into new origdatablocks of at most ``block_files`` files; a path SciCat lists with
        another checksum (a file changed at the source) is replaced inside its block; a path listed with the
        same checksum is left alone. Whether anything was written (v4 then needs the dataset's totals set).
        A call that fails leaves the index unknown: the caller must :meth:`forget` it."""
        index = self.index_for(dataset_id)
        new: list[FileEntry] = []
        stale: list[FileEntry] = []
        for e in entries:
            have = index.entries.get(e.path)
            if have is None:
                new.append(e)
            elif have[1] != e.sha256 or have[2] != e.size:
                stale.append(e)
        for chunk in chunks(new, self.api.settings.block_files):
            body = self.body(dataset_id, chunk)
            if self.api.settings.api == "v4":
                block = self.api.call("POST", self.api.blocks_url(), body=body)
            else:
                block = self.api.call("POST", f"{self.api.dataset_url(dataset_id)}/origdatablocks", body=body)
            index.add(str((block or {}).get("_id")), body["dataFileList"], body["size"])
        if stale:
            self._replace(dataset_id, index, stale)
        return bool(new or stale)

    def _block_url(self, dataset_id: str, block_id: str) -> str:
        if self.api.settings.api == "v4":
            return f"{self.api.blocks_url()}/{quote(block_id, safe='')}"
        return f"{self.api.dataset_url(dataset_id)}/origdatablocks/{quote(block_id, safe='')}"

    def _replace(self, dataset_id: str, index: Index, stale: Sequence[FileEntry]) -> None:
        """Rewrite each block that lists an old version of a path with the new size, time and checksum."""
        by_block: dict[str, dict[str, FileEntry]] = {}
        for e in stale:
            by_block.setdefault(index.entries[e.path][0], {})[e.path] = e
        relist: list[FileEntry] = []
        for block_id, fresh in by_block.items():
            block = self.api.call("GET", f"{self.api.blocks_url()}/{quote(block_id, safe='')}")
            if not isinstance(block, dict):
                raise CatalogueError(f"SciCat did not return origdatablock {block_id}")
            old_files = [f for f in block.get("dataFileList") or [] if isinstance(f, dict)]
            ours = (block.get("chkAlg") or "sha256") == "sha256"
            files: list[dict[str, Any]] = []
            for f in old_files:
                entry = fresh.get(str(f.get("path")))
                if entry is None:
                    files.append({k: f[k] for k in DATA_FILE_KEYS if k in f})
                elif ours:
                    files.append(
                        {
                            "path": entry.path,
                            "size": entry.size,
                            "time": iso(entry.mtime),
                            "chk": entry.sha256,
                        }
                    )
                    fresh.pop(entry.path)  # a path listed twice keeps one entry
            if not ours:
                # Another tool's block, with another checksum algorithm: the old entries leave it and the new
                # versions get a block of their own.
                relist += fresh.values()
                if not files:
                    log.warning(
                        "origdatablock %s of dataset %s lists only old versions of changed files and cannot be "
                        "emptied; they stay listed next to the new versions",
                        block_id,
                        dataset_id,
                    )
                    for path in fresh:
                        index.entries.pop(path, None)
                    continue
            size = sum(int(f.get("size") or 0) for f in files)
            body = {"size": size, "chkAlg": block.get("chkAlg") or "sha256", "dataFileList": files}
            self.api.call("PATCH", self._block_url(dataset_id, block_id), body=body)
            index.size += size - int(block.get("size") or 0)
            index.files += len(files) - len(old_files)
            for path in fresh:
                index.entries.pop(path, None)
            for f in files:
                index.entries[str(f["path"])] = (block_id, str(f.get("chk") or ""), int(f.get("size") or 0))
        if relist:
            self.append(dataset_id, relist)

    def new_dataset(self, dataset_id: str) -> None:
        """A dataset just created lists nothing yet: no need to ask."""
        self._indexes[dataset_id] = Index()

    def forget(self, dataset_id: str) -> None:
        """Read the dataset's blocks from SciCat again next time (after a call whose outcome is unknown)."""
        self._indexes.pop(dataset_id, None)

    def registered(self, dataset_id: str, entries: Sequence[FileEntry]) -> set[str]:
        self._indexes.pop(
            dataset_id, None
        )  # asked after an unknown outcome: what SciCat has now, not what we knew
        index = self.index_for(dataset_id)
        return {e.path for e in entries if (index.entries.get(e.path) or ("", "", -1))[1] == e.sha256}
