"""The SciCat adapter: proposals are investigations, raw datasets are datasets, origdatablocks list the files.

It speaks SciCat backend-next's REST API with ``requests`` and maps every answer to the typed errors of
:mod:`engine.catalogue.base`, so the pipeline never sees HTTP: a rejected login → :class:`AuthError` (log in
again), 403 → :class:`NotPermitted`, 400 → :class:`InvalidMetadata` (with SciCat's reasons as readable lines),
409 → :class:`Conflict`, 5xx / timeouts / refused connections → :class:`TransientError` (retry later).

What the real backend (backend-next, checked against commit 4055c96) does that shapes this adapter:

- A token it no longer accepts (expired, or its JWT secret changed) is not refused with 401: the caller becomes
  *anonymous*. Writes answer 403 "Forbidden resource", reads answer as for the public, ``/auth/whoami`` answers 200
  with an empty body; only ``/users/my/identity`` answers 401. So every 403 is checked against the identity
  route before it is reported as "not permitted", and a rejected token makes every later call read the token
  store again, so a ``datauploader login`` in another shell revives a running sync.
- ``GET /datasets/{pid}/origdatablocks`` returns at most 100 blocks and takes no filter; ``GET /origdatablocks``
  with a ``filter`` pages through all of them. The files a dataset lists are read that way, once per run, into
  an index (path → block, checksum) that every later registration keeps up to date, so a file is listed exactly
  once with its current checksum whatever happened before (a lost answer, a lost journal, a changed file).
- ``GET /datasets`` runs every string value of a ``where`` through JavaScript's ``new Date()``: "scan-001", "run
  12", "2024-001" become dates and match nothing. Values inside arrays are left alone, so every lookup uses
  ``{"$in": [value]}``.
- A 400 from ``POST /datasets`` carries ``message`` as a JSON-encoded list of class-validator errors, and
  ``isValid`` answers ``{"valid": false, "error": "a; b"}``; both are turned into readable lines.
- ``api = "v4"``: ``PATCH /api/v4/datasets/{pid}`` resets ``size``, ``packedSize`` and ``numberOfFiles`` to 0 when
  they are not sent, and ``POST``/``PATCH /api/v4/origdatablocks`` recompute the totals from the 10 newest blocks
  only; every v4 write therefore sends the true totals.
- An account in ``CREATE_DATASET_PRIVILEGED_GROUPS`` may create datasets for any group but update only those of
  its own groups: what it may not change is left as it is, with one warning, and never fails the upload.

Sessions are JWTs without a refresh token (3600 s by default), kept by :class:`engine.credentials.TokenStore`.
PIDs contain ``/`` and are URL-encoded in paths.

Modules: :mod:`.api` (HTTP, login, answers → errors), :mod:`.proposals` (investigations), :mod:`.datasets`,
:mod:`.blocks` (origdatablocks: the files), :mod:`.values` (times, paths, metadata values), :mod:`.reasons`
(SciCat's refusals and failed connections as readable lines); :mod:`.catalogue` puts them behind the
:class:`engine.catalogue.base.Catalogue` interface.
"""

from __future__ import annotations

from engine.catalogue.scicat.catalogue import SciCatCatalogue
from engine.catalogue.scicat.values import storage_path

__all__ = ["SciCatCatalogue", "storage_path"]
