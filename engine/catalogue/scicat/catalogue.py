"""SciCat behind the :class:`engine.catalogue.base.Catalogue` interface: what the pipeline calls, routed to the
parts of the adapter that know how."""

from __future__ import annotations

from collections.abc import Sequence

from engine.catalogue.base import Credentials, DatasetChanges, DatasetSpec, FileEntry, Investigation, Session
from engine.catalogue.scicat.api import SciCatApi
from engine.catalogue.scicat.blocks import FileBlocks
from engine.catalogue.scicat.datasets import Datasets
from engine.catalogue.scicat.proposals import Proposals
from engine.config import SciCatSettings
from engine.credentials import TokenStore


class SciCatCatalogue:
    name = "scicat"
    needs_login = True
    resend_is_free = False  # a resend re-reads the dataset's blocks over the network

    def __init__(self, settings: SciCatSettings, store: TokenStore, profile: str = "default") -> None:
        self.settings = settings
        self.expiry_warning = settings.expiry_warning
        self.api = SciCatApi(settings, store, profile)
        self.proposals = Proposals(self.api)
        self.blocks = FileBlocks(self.api)
        self.datasets = Datasets(self.api, self.proposals, self.blocks)

    @property
    def can_create_investigations(self) -> bool:
        """Unknown until tried: ordinary SciCat users may not create proposals; their 403 turns this off."""
        return self.proposals.can_create

    @can_create_investigations.setter
    def can_create_investigations(self, value: bool) -> None:
        self.proposals.can_create = value

    def close(self) -> None:
        self.api.close()

    # -- login ---------------------------------------------------------------------------------------------------

    def probe(self) -> None:
        self.api.probe()

    def login(self, credentials: Credentials) -> Session:
        return self.api.login(credentials)

    def logout(self) -> None:
        self.api.logout()

    def session(self) -> Session | None:
        return self.api.session()

    # -- investigations ------------------------------------------------------------------------------------------

    def list_investigations(self) -> list[Investigation]:
        return self.proposals.list_investigations()

    def get_investigation(self, investigation_id: str) -> Investigation | None:
        return self.proposals.get_investigation(investigation_id)

    def create_investigation(self, investigation: Investigation) -> Investigation:
        return self.proposals.create_investigation(investigation)

    # -- datasets ------------------------------------------------------------------------------------------------

    def validate_dataset(self, spec: DatasetSpec) -> None:
        self.datasets.validate(spec)

    def find_dataset(self, spec: DatasetSpec) -> str | None:
        return self.datasets.find(spec)

    def create_dataset(self, spec: DatasetSpec) -> str:
        return self.datasets.create(spec)

    def update_dataset(self, dataset_id: str, spec: DatasetSpec, changes: DatasetChanges | None) -> None:
        self.datasets.update(dataset_id, spec, changes)

    def finalise(self, dataset_id: str, *, start_time: float, end_time: float) -> None:
        self.datasets.finalise(dataset_id, start_time=start_time, end_time=end_time)

    # -- files ---------------------------------------------------------------------------------------------------

    def append_files(self, dataset_id: str, entries: Sequence[FileEntry]) -> None:
        """The dataset's size and numberOfFiles stay the sum of what its blocks list."""
        try:
            if self.blocks.append(dataset_id, entries) and self.settings.api == "v4":
                self.datasets.fix_totals(dataset_id)
        except BaseException:
            # The outcome of the failed call is unknown (it may have been stored): read it all again next time.
            self.blocks.forget(dataset_id)
            raise

    def registered(self, dataset_id: str, entries: Sequence[FileEntry]) -> set[str]:
        return self.blocks.registered(dataset_id, entries)
