"""Datasets are SciCat raw datasets: built from the spec, validated, found again, created and updated (only what
changed, merged into what SciCat holds), and finally given the time the data was taken."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from typing import Any

from engine.catalogue.base import (
    Conflict,
    DatasetChanges,
    DatasetSpec,
    InvalidMetadata,
    MetaValue,
    NotPermitted,
    Session,
)
from engine.catalogue.scicat.api import SciCatApi
from engine.catalogue.scicat.blocks import FileBlocks
from engine.catalogue.scicat.proposals import Proposals
from engine.catalogue.scicat.reasons import listing, message_fields
from engine.catalogue.scicat.values import iso, same_time, same_value, storage_path

log = logging.getLogger(__name__)


class Datasets:
    def __init__(self, api: SciCatApi, proposals: Proposals, blocks: FileBlocks) -> None:
        self.api = api
        self.proposals = proposals
        self.blocks = blocks

    def source_folder(self, spec: DatasetSpec) -> str:
        """The dataset's folder as the facility's archive sees it (see ``source_folder`` in the config)."""
        template = self.api.settings.source_folder
        if template is None:
            return storage_path(spec.location)
        if "{" not in template:
            return f"{template.rstrip('/')}/{spec.target}"
        folder = template.format(
            investigation=spec.investigation or "", dataset=spec.name, target=spec.target
        )
        return folder[:1] + re.sub(r"/{2,}", "/", folder[1:])  # an empty {investigation} leaves no "//"

    def _meta(self, spec: DatasetSpec, proposal: dict[str, Any] | None) -> dict[str, MetaValue]:
        meta: dict[str, MetaValue] = dict(spec.meta)
        if (
            spec.investigation_description
            and (proposal or {}).get("abstract") != spec.investigation_description
        ):
            meta.setdefault("investigation_description", spec.investigation_description)
        return meta

    def _pi(self, spec: DatasetSpec, proposal: dict[str, Any] | None, session: Session) -> str | None:
        """Who the principal investigator is: the user's --pi, else the proposal's; a person logged in stands in
        for a dataset without either, a functional account never does."""
        pi = spec.pi or (proposal or {}).get("pi_email") or (proposal or {}).get("email")
        if pi and session.functional and pi == session.email:
            pi = None  # a proposal created by an older DataUploader with the account's own e-mail
        if not pi and not session.functional:
            pi = session.email
        return str(pi) if pi else None

    def body(self, spec: DatasetSpec) -> dict[str, Any]:
        """The raw dataset as SciCat wants it (v3 shape; converted for v4 at the end)."""
        session = self.api.require_session()
        proposal = self.proposals.get(spec.investigation) if spec.investigation else None
        if not session.email:
            raise InvalidMetadata(
                "your SciCat account has no e-mail address, which a dataset needs (contactEmail)",
                ["contactEmail"],
            )
        owner_group = self.api.settings.owner_group or (proposal or {}).get("ownerGroup")
        owner_group = owner_group or self.proposals.default_group(spec.investigation, session)
        pi = self._pi(spec, proposal, session)
        if pi is None and self.api.settings.api != "v4":
            raise InvalidMetadata(
                "SciCat needs a principal investigator for a raw dataset and neither --pi nor the investigation "
                f"names one ('{session.user}' is a functional account, not a person): give --pi EMAIL",
                ["principalInvestigator"],
                field="pi",
            )
        meta = self._meta(spec, proposal)
        body: dict[str, Any] = {
            "type": "raw",
            "datasetName": spec.name,
            "ownerGroup": owner_group,
            "owner": session.user,
            "ownerEmail": session.email,
            "contactEmail": session.email,
            "sourceFolder": self.source_folder(spec),
            "creationTime": iso(spec.created or time.time()),
            "creationLocation": self.api.settings.creation_location
            or f"/DataUploader/{socket.gethostname()}",
        }
        if pi:
            body["principalInvestigator"] = pi
        access = list(self.api.settings.access_groups) or list((proposal or {}).get("accessGroups") or [])
        if access:
            body["accessGroups"] = access
        if spec.description:
            body["description"] = spec.description
        if spec.investigation:
            body["proposalId"] = spec.investigation
        if meta:
            body["scientificMetadata"] = meta
        if self.api.settings.keywords:
            body["keywords"] = list(self.api.settings.keywords)
        if self.api.settings.api == "v4":
            if "principalInvestigator" in body:
                body["principalInvestigators"] = [body.pop("principalInvestigator")]
            if "proposalId" in body:
                body["proposalIds"] = [body.pop("proposalId")]
        return body

    def validate(self, spec: DatasetSpec) -> None:
        # Membership of the owner group is left to the server (privileged accounts may create datasets for any
        # group); its 403 comes from create_dataset, which also runs before anything is transferred.
        body = self.body(spec)
        try:
            answer = self.api.call("POST", f"{self.api.datasets_url()}/isValid", body=body) or {}
        except NotPermitted as exc:
            raise self._not_permitted_to_create(spec, body, exc) from None
        if not answer.get("valid", False):
            error = answer.get("error")
            reasons = [r.strip() for r in str(error).split(";") if r.strip()] if error else []
            reasons += [str(r) for r in answer.get("reason") or []]
            raise InvalidMetadata(
                f"SciCat would refuse the dataset's metadata:{listing(reasons)}", message_fields(reasons)
            )

    def find(self, spec: DatasetSpec) -> str | None:
        # Every value sits in an array: SciCat turns a plain string that JavaScript can read as a date ("scan-001",
        # "run 12", "2024-001") into a date, which then matches nothing; array items are left alone.
        where: dict[str, Any] = {
            "datasetName": {"$in": [spec.name]},
            "sourceFolder": {"$in": [self.source_folder(spec)]},
        }
        if spec.investigation:
            where["proposalIds" if self.api.settings.api == "v4" else "proposalId"] = {
                "$in": [spec.investigation]
            }
        flt = json.dumps({"where": where, "limits": {"limit": 2, "skip": 0}})
        found = [d for d in self.api.call("GET", self.api.datasets_url(), params={"filter": flt}) or [] if d]
        if len(found) > 1:
            log.warning(
                "SciCat lists %d datasets named '%s' in %s; registering to %s",
                len(found),
                spec.name,
                spec.investigation or "no investigation",
                found[0].get("pid"),
            )
        return str(found[0]["pid"]) if found else None

    def _not_permitted_to_create(
        self, spec: DatasetSpec, body: dict[str, Any], exc: NotPermitted
    ) -> NotPermitted:
        return NotPermitted(
            f"SciCat refused to create dataset '{spec.name}' owned by group '{body['ownerGroup']}' ({exc}); "
            f"the account must be in that group: pick an investigation of yours or set owner_group in "
            f"[profiles.{self.api.profile}.scicat]"
        )

    def create(self, spec: DatasetSpec) -> str:
        body = self.body(spec)
        try:
            created = self.api.call("POST", self.api.datasets_url(), body=body)
        except Conflict:
            pid = self.find(spec)
            if pid is None:
                raise
            return pid
        except NotPermitted as exc:
            raise self._not_permitted_to_create(spec, body, exc) from None
        except InvalidMetadata as exc:
            message = str(exc).replace(
                "SciCat refused the request", f"SciCat refused dataset '{spec.name}'", 1
            )
            raise InvalidMetadata(message, exc.fields) from None
        pid = str(created["pid"])
        self.blocks.new_dataset(pid)  # new: it lists nothing yet, no need to ask
        return pid

    def patch(self, pid: str, patch: dict[str, Any], current: dict[str, Any]) -> None:
        if self.api.settings.api == "v4":
            # v4's update DTO defaults these to 0: whatever is not sent is reset. Send the true values.
            index = self.blocks.index_for(pid, current)
            patch = {
                **patch,
                "size": index.size,
                "numberOfFiles": index.files,
                "packedSize": int(current.get("packedSize") or 0),
            }
        self.api.call("PATCH", self.api.dataset_url(pid), body=patch)

    def update(self, dataset_id: str, spec: DatasetSpec, changes: DatasetChanges | None) -> None:
        """Write only what the user changed (or, for a dataset found again, what it lacks), merged into what SciCat
        holds: curators' edits stay, and an unchanged re-run writes nothing."""
        try:
            current = self.api.get_dataset(dataset_id)
        except NotPermitted as exc:
            self.api.warn_once(
                f"update:{dataset_id}",
                "SciCat does not let this account read or update dataset %s (%s); its description and metadata "
                "were left as they are",
                dataset_id,
                exc,
            )
            return
        proposal = self.proposals.get(spec.investigation) if spec.investigation else None
        wanted = self._meta(spec, proposal)
        have = current.get("scientificMetadata")
        have_meta: dict[str, Any] = have if isinstance(have, dict) else {}
        patch: dict[str, Any] = {}
        if changes is None:
            if spec.description and not current.get("description"):
                patch["description"] = spec.description
            keys = {k for k in wanted if k not in have_meta}
            missing = [k for k in self.api.settings.keywords if k not in (current.get("keywords") or [])]
            if missing:
                patch["keywords"] = [*(current.get("keywords") or []), *missing]
        else:
            if (
                changes.description
                and spec.description is not None
                and spec.description != current.get("description")
            ):
                patch["description"] = spec.description
            keys = set(changes.meta)
            if changes.investigation_description:
                keys.add("investigation_description")
            if changes.pi and spec.pi:
                now_pi = current.get("principalInvestigators") or [current.get("principalInvestigator")]
                if spec.pi not in now_pi:
                    if self.api.settings.api == "v4":
                        patch["principalInvestigators"] = [spec.pi]
                    else:
                        patch["principalInvestigator"] = spec.pi
        updates = {k: wanted[k] for k in keys if k in wanted and not same_value(have_meta.get(k), wanted[k])}
        if updates:
            patch["scientificMetadata"] = {**have_meta, **updates}
        if not patch:
            return
        try:
            self.patch(dataset_id, patch, current)
        except NotPermitted as exc:
            self.api.warn_once(
                f"update:{dataset_id}",
                "SciCat does not let this account update dataset %s (%s); the changed %s was not applied",
                dataset_id,
                exc,
                ", ".join(sorted(patch)),
            )

    # -- files -------------------------------------------------------------------------------------------------

    def fix_totals(self, dataset_id: str) -> None:
        """v4: make the dataset's size and numberOfFiles what its blocks list (a block write recomputes them from
        the 10 newest blocks only)."""
        index = self.blocks.index_for(dataset_id)
        current = self.api.get_dataset(dataset_id)
        if current.get("size") != index.size or current.get("numberOfFiles") != index.files:
            self.patch(dataset_id, {}, current)

    def finalise(self, dataset_id: str, *, start_time: float, end_time: float) -> None:
        """Set creationTime and endTime to when the data was taken, if they say otherwise. Nothing else: the
        lifecycle (archivable, …) belongs to the facility's archive managers."""
        try:
            current = self.api.get_dataset(dataset_id)
            patch: dict[str, Any] = {}
            if not same_time(current.get("creationTime"), start_time):
                patch["creationTime"] = iso(start_time)
            if not same_time(current.get("endTime"), end_time):
                patch["endTime"] = iso(end_time)
            if patch:
                self.patch(dataset_id, patch, current)
        except NotPermitted as exc:
            # A privileged creator may create datasets for any group but update only its own groups' ones.
            self.api.warn_once(
                f"finalise:{dataset_id}",
                "SciCat does not let this account update dataset %s (%s): its creationTime/endTime stay as set "
                "when it was created; every file is registered",
                dataset_id,
                exc,
            )
