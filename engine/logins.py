"""Watching catalogue logins: a warning before one expires, and word when it has.

Catalogue tokens (SciCat's JWTs) have no refresh: a person must log in again, and an unattended sync only keeps
registering if someone does it in time. The engine asks each profile's catalogue for its session every few seconds
(the adapter answers from its cache; the token's ``exp`` says when it ends) and emits one event per token when it
is about to expire and one when it has, whether or not a dataset is running — the tray notifies, the CLI logs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from engine.catalogue import Catalogue, CatalogueError, Session
from engine.events import Event, LoginExpired, LoginExpiring

log = logging.getLogger(__name__)

DEFAULT_WARNING = 1800.0  # seconds before expiry; a catalogue's `expiry_warning` setting wins


@dataclass
class _Seen:
    session: Session | None = None
    warned: float | None = None  # the expiry time warned about (one warning per token)


class LoginWatch:
    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}

    def check(self, profile: str, catalogue: Catalogue) -> list[Event]:
        """Events for ``profile`` since the last check: expiring (once per token), expired (once per login)."""
        if not catalogue.needs_login:
            return []
        seen = self._seen.setdefault(profile, _Seen())
        try:
            session = catalogue.session()
        except CatalogueError as exc:
            log.debug("cannot check the login of profile %s: %s", profile, exc)
            return []
        events: list[Event] = []
        if session is None:
            if seen.session is not None:
                log.warning(
                    "the %s login of profile '%s' has expired (or was revoked); uploads go on, registrations wait "
                    "for a new login",
                    catalogue.name,
                    profile,
                )
                events.append(LoginExpired(profile=profile))
            seen.session = None
            return events
        seen.session = session
        if session.expires is None or session.expires == seen.warned:
            return events
        left = session.expires - time.time()
        if left <= float(getattr(catalogue, "expiry_warning", DEFAULT_WARNING)):
            seen.warned = session.expires
            log.warning(
                "the %s login of %s (profile '%s') expires in %d min (at %s); log in again to keep registering "
                "(uploads go on meanwhile)",
                catalogue.name,
                session.user,
                profile,
                max(0, int(left // 60)),
                time.strftime("%H:%M", time.localtime(session.expires)),
            )
            events.append(LoginExpiring(profile=profile, user=session.user, expires=session.expires))
        return events
