"""Investigations are SciCat proposals: read (once per process), listed, and created when the account may."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from engine.catalogue.base import (
    CatalogueError,
    Conflict,
    InvalidMetadata,
    Investigation,
    NotPermitted,
    Session,
)
from engine.catalogue.scicat.api import SciCatApi
from engine.errors import Action


def _investigation(p: dict[str, Any]) -> Investigation:
    return Investigation(
        id=str(p["proposalId"]), title=p.get("title"), description=p.get("abstract"), pi=p.get("pi_email")
    )


class Proposals:
    def __init__(self, api: SciCatApi) -> None:
        self.api = api
        # Unknown until tried: ordinary SciCat users may not create proposals; a 403 turns this off.
        self.can_create = True
        self._cache: dict[str, dict[str, Any] | None] = {}

    def get(self, proposal_id: str) -> dict[str, Any] | None:
        if proposal_id in self._cache:
            return self._cache[proposal_id]
        try:
            found = self.api.call(
                "GET", f"{self.api.v3}/proposals/{quote(proposal_id, safe='')}", missing_ok=True
            )
        except NotPermitted:
            raise NotPermitted(
                f"investigation '{proposal_id}' exists in SciCat but your account has no access to it",
                field="investigation",
                action=Action.PICK_INVESTIGATION,
            ) from None
        proposal = found if isinstance(found, dict) and found.get("proposalId") else None
        if proposal is not None:
            self._cache[proposal_id] = proposal
        return proposal

    def list_investigations(self) -> list[Investigation]:
        """Every proposal the account may read: SciCat itself limits the list (an admin or functional account
        sees all, a person those of their groups), so no filter of ours hides any."""
        self.api.checked_session()
        found: list[dict[str, Any]] = []
        page = 500
        while True:
            flt = {"limits": {"limit": page, "skip": len(found), "order": "proposalId:asc"}}
            batch = (
                self.api.call("GET", f"{self.api.v3}/proposals", params={"filters": json.dumps(flt)}) or []
            )
            found += [p for p in batch if isinstance(p, dict)]
            if len(batch) < page:
                break
        unique = {str(p["proposalId"]): p for p in found if p.get("proposalId")}
        return [_investigation(unique[k]) for k in sorted(unique)]

    def get_investigation(self, investigation_id: str) -> Investigation | None:
        p = self.get(investigation_id)
        return _investigation(p) if p else None

    def create_investigation(self, investigation: Investigation) -> Investigation:
        session = self.api.require_session()
        if not investigation.title or not investigation.pi:
            # A proposal needs a title and its proposer's e-mail; DataUploader never makes them up (the account's
            # own e-mail and the id are not what the facility's records should show).
            raise InvalidMetadata(
                f"investigation '{investigation.id}' does not exist in SciCat; to create it (with an account that "
                "may create proposals) give its title and PI (--investigation-title TEXT --pi EMAIL)",
                [f for f, v in (("title", investigation.title), ("pi_email", investigation.pi)) if not v],
                field="investigation_title" if not investigation.title else "pi",
                action=Action.PICK_INVESTIGATION,
            )
        body: dict[str, Any] = {
            "proposalId": investigation.id,
            "ownerGroup": self.default_group(investigation.id, session),
            "title": investigation.title,
            "email": investigation.pi,
            "pi_email": investigation.pi,
        }
        if investigation.description:
            body["abstract"] = investigation.description
        if self.api.settings.access_groups:
            body["accessGroups"] = list(self.api.settings.access_groups)
        try:
            created = self.api.call("POST", f"{self.api.v3}/proposals", body=body)
        except NotPermitted:
            self.can_create = False
            raise NotPermitted(
                f"investigation '{investigation.id}' does not exist in SciCat and account '{session.user}' may not "
                "create proposals",
                field="investigation",
                action=Action.PICK_INVESTIGATION,
            ) from None
        except Conflict:
            self._cache.pop(investigation.id, None)
            created = self.get(investigation.id)
        if not isinstance(created, dict):
            raise CatalogueError(f"SciCat did not return the proposal '{investigation.id}'")
        self._cache[investigation.id] = created
        return _investigation(created)

    def default_group(self, investigation: str | None, session: Session) -> str:
        """The group that owns what we create when the config does not say: a group of the user's named like the
        proposal, else the user's only group, else a group named like the proposal (the server decides)."""
        if self.api.settings.owner_group:
            return self.api.settings.owner_group
        if investigation and investigation in session.groups:
            return investigation
        if len(session.groups) == 1:
            return session.groups[0]
        if investigation:
            return investigation  # the usual convention: a proposal's group is named like the proposal
        raise InvalidMetadata(
            "cannot tell which group should own the dataset: give --investigation or set owner_group in "
            f"[profiles.{self.api.profile}.scicat] (your groups: {', '.join(session.groups) or 'none'})",
            ["ownerGroup"],
        )
