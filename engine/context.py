"""Everything one dataset's run uses, handed to it by the engine: its own journal connection, and the profile's
shared catalogue session, the engine's shared rclone daemon and transfer gate, and the event bus.

Runs never open these themselves, so several datasets in one engine share one rclone daemon and one catalogue login
per profile, while each keeps its own journal connection (the scan staging table is per connection).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.catalogue import Catalogue
from engine.config import Profile
from engine.events import Event
from engine.gate import TransferGate
from engine.home import Home
from engine.journal import Journal
from engine.rclone.daemon import RcloneDaemon
from engine.storage import Storage


@dataclass
class RunContext:
    """What one run works with: its own journal connection, and the catalogue, rclone and gate it shares."""

    home: Home
    profile: Profile
    journal: Journal  # this run's own connection
    catalogue: Catalogue  # shared by the runs of the profile
    daemon: RcloneDaemon  # shared by the engine
    storage: Storage  # this run's view of the profile's storage (its transfer settings)
    gate: TransferGate  # shared by the engine
    emit: Callable[[Event], None]

    @property
    def retry_for(self) -> float:
        return self.profile.retry_for
