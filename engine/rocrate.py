"""The dataset manifest on storage: an RO-Crate 1.1 ``ro-crate-metadata.json`` at the dataset's root.

It makes every uploaded dataset self-describing without any server: whoever finds the folder on storage learns
what it is, which investigation it belongs to, and the size and sha256 of every file. It is streamed to disk
entity by entity (not built as one object graph) so a dataset of a million files needs no more memory than one
of ten.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from engine.version import __version__

MANIFEST_NAME = "ro-crate-metadata.json"
_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
# One encoder for every entity: json.dumps with options builds a new one per call, which cost more than the
# writing for a crate of many small files.
_encode = json.JSONEncoder(ensure_ascii=False).encode
_URI_SAFE = re.compile(r"[A-Za-z0-9_.~/-]*")  # what quote() leaves as it is (safe="/")


@dataclass
class CrateFile:
    """One File entity of the manifest."""

    path: str
    size: int
    sha256: str
    mtime: float


@dataclass
class CrateDataset:
    """What the manifest says about the dataset as a whole."""

    name: str
    investigation: str | None
    description: str | None
    investigation_description: str | None
    meta: dict[str, Any]  # typed --meta values: text, numbers, or quantities {"value": 300, "unit": "K"}
    created: float
    completed: float
    license: str | None = None  # an SPDX identifier ("CC-BY-4.0") or a URL; the profile's `license`


def license_id(license: str) -> str:
    """A license as a URI: an SPDX identifier becomes its spdx.org page, a URL stays as it is."""
    return license if "://" in license else f"https://spdx.org/licenses/{license}"


def _default_description(dataset: CrateDataset) -> str:
    """RO-Crate wants every dataset described; without the user's words, say what it is and where it came from."""
    part = f" of investigation {dataset.investigation}" if dataset.investigation else ""
    return (
        f"Data set {dataset.name}{part}, uploaded from {socket.gethostname()} by DataUploader {__version__}."
    )


def file_id(rel: str) -> str:
    """RO-Crate data entity ids are URI references relative to the crate root, so names are percent-encoded."""
    return rel if _URI_SAFE.fullmatch(rel) else quote(rel, safe="/")


def _iso(ts: float) -> str:
    """UTC, to the second, as ISO 8601 (``2026-11-27T19:05:19+00:00``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def write_crate(out: Path, dataset: CrateDataset, files: Iterable[CrateFile]) -> None:
    """Write the crate to ``out``, reading ``files`` once: the root's ``hasPart`` goes to ``out`` while the file
    entities, which come later in the graph, go to a scratch file appended at their place (a second pass over the
    journal cost more than the writing)."""
    with (
        out.open("w", encoding="utf-8") as fh,
        tempfile.TemporaryFile("w+", encoding="utf-8", dir=out.parent) as later,
    ):
        fh.write('{\n"@context": ' + _encode(_CONTEXT) + ',\n"@graph": [\n')
        _entity(
            fh,
            {
                "@id": MANIFEST_NAME,
                "@type": "CreativeWork",
                "conformsTo": {"@id": "https://w3id.org/ro/crate/1.1"},
                "about": {"@id": "./"},
                "sdPublisher": {"@id": "#datauploader"},
            },
        )
        root: dict[str, Any] = {
            "@id": "./",
            "@type": "Dataset",
            "name": dataset.name,
            "dateCreated": _iso(dataset.created),
            "datePublished": _iso(dataset.completed),
        }
        root["description"] = dataset.description or _default_description(dataset)
        if dataset.license:
            root["license"] = {"@id": license_id(dataset.license)}
        if dataset.investigation:
            root["isPartOf"] = {"@id": "#investigation"}
        if dataset.meta:
            root["additionalProperty"] = [{"@id": f"#meta-{quote(k, safe='')}"} for k in sorted(dataset.meta)]
        # hasPart is streamed inside the root entity; each file's entity is written beside it, for later. Both are
        # formatted here rather than built as dicts for the encoder: the same JSON, in a third of the time.
        head = _encode(root)[:-1]
        fh.write(",\n" + head + ', "hasPart": [')
        lead = ""
        for f in files:
            fid = _encode(file_id(f.path))
            fh.write(f'{lead}{{"@id": {fid}}}')
            later.write(
                f',\n{{"@id": {fid}, "@type": "File", "name": {_encode(f.path)}, "contentSize": {int(f.size)}, '
                f'"sha256": {_encode(f.sha256)}, "dateModified": "{_iso(f.mtime)}"}}'
            )
            lead = ", "
        fh.write("]}")
        if dataset.license:
            _entity(
                fh,
                {"@id": license_id(dataset.license), "@type": "CreativeWork", "name": dataset.license},
                lead=",\n",
            )
        if dataset.investigation:
            inv: dict[str, Any] = {
                "@id": "#investigation",
                "@type": "ResearchProject",
                "identifier": dataset.investigation,
                "name": dataset.investigation,
            }
            if dataset.investigation_description:
                inv["description"] = dataset.investigation_description
            _entity(fh, inv, lead=",\n")
        for k in sorted(dataset.meta):
            _entity(
                fh, {"@id": f"#meta-{quote(k, safe='')}", **property_value(k, dataset.meta[k])}, lead=",\n"
            )
        _entity(
            fh,
            {
                "@id": "#datauploader",
                "@type": "SoftwareApplication",
                "name": "DataUploader",
                "version": __version__,
            },
            lead=",\n",
        )
        later.seek(0)
        shutil.copyfileobj(later, fh)
        fh.write("\n]\n}\n")


def property_value(name: str, value: Any) -> dict[str, Any]:
    """A schema.org PropertyValue that keeps the value's type: a number stays a number, and a quantity
    ``{"value": 300, "unit": "K"}`` becomes ``value`` 300 with ``unitText`` "K" (schema.org's unit field), so
    a reader of the crate gets the same numbers the catalogue has."""
    entity: dict[str, Any] = {"@type": "PropertyValue", "name": name}
    if isinstance(value, dict) and "value" in value:
        entity["value"] = value["value"]
        if value.get("unit"):
            entity["unitText"] = value["unit"]
    else:
        entity["value"] = value
    return entity


def _entity(fh: IO[str], entity: dict[str, Any], lead: str = "") -> None:
    fh.write(lead + _encode(entity))


def read_crate_files(path: Path) -> Iterator[tuple[str, int, str]]:
    """(path, size, sha256) of every File entity; used by tests and ``verify`` tooling."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for e in data["@graph"]:
        if e.get("@type") == "File":
            yield e["name"], int(e["contentSize"]), e["sha256"]


def is_own_crate(path: Path, dataset: str) -> bool:
    """A crate DataUploader wrote for ``dataset``: published by its SoftwareApplication entity, about that name."""
    data = json.loads(path.read_text(encoding="utf-8"))
    graph = data.get("@graph") if isinstance(data, dict) else None
    if not isinstance(graph, list):
        return False
    ids = {e.get("@id"): e for e in graph if isinstance(e, dict)}
    app, root = ids.get("#datauploader") or {}, ids.get("./") or {}
    return app.get("name") == "DataUploader" and root.get("name") == dataset
