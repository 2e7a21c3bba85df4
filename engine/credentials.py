"""Where catalogue login tokens are kept between runs: the OS keyring, or a private file when there is none.

A token (never a password: passwords are not stored anywhere) lets an unattended ``sync`` keep registering after
the person who logged in has walked away, and lets ``login`` in one shell refresh the session of an upload
running in another. The OS keyring (Windows Credential Manager, macOS Keychain, Secret Service) is the right
place; headless Linux instrument PCs often have no keyring backend at all, so the token then goes to a file under
the home's data folder that only the user can read (mode 0600), and the user is warned once, when the file is
created.

``DATAUPLOADER_TOKEN_STORE=file`` forces the file (tests, or a keyring that prompts on a kiosk PC);
``=keyring`` forbids the fallback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path

import keyring
import keyring.backends.fail

log = logging.getLogger(__name__)

SERVICE = "datauploader"
STORE_ENV = "DATAUPLOADER_TOKEN_STORE"
TOKEN_FILE = "tokens.json"


class TokenStore:
    """Tokens by key (the catalogue's URL), in the keyring when it works, else in ``<data_dir>/tokens.json``."""

    def __init__(self, data_dir: Path) -> None:
        self.file = data_dir / TOKEN_FILE
        mode = os.environ.get(STORE_ENV, "").strip().lower()
        if mode not in ("", "file", "keyring"):
            mode = ""
        self.mode = mode

    # -- keyring -------------------------------------------------------------------------------------------

    def _keyring_usable(self) -> bool:
        if self.mode == "file":
            return False
        if self.mode == "keyring":
            return True
        try:
            backend = keyring.get_keyring()
        except Exception:  # a broken keyring configuration must not stop uploads
            return False
        return not isinstance(backend, keyring.backends.fail.Keyring)

    def _keyring_get(self, key: str) -> str | None:
        if not self._keyring_usable():
            return None
        try:
            return keyring.get_password(SERVICE, key)
        except Exception as exc:  # locked/absent D-Bus secret service and the like: fall back to the file
            log.debug("keyring not readable: %s", exc)
            return None

    # -- file ----------------------------------------------------------------------------------------------

    def _read_file(self) -> dict[str, str]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("token file %s is unreadable (%s); log in again", self.file, exc)
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write_file(self, tokens: dict[str, str]) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        if not tokens:
            with contextlib.suppress(FileNotFoundError):
                self.file.unlink()
            return
        # Created 0600 from the first byte (mkstemp), then renamed over: never a moment where others can read it.
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.file.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(tokens, fh, indent=1, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # -- the API -------------------------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        token = self._keyring_get(key)
        if token:
            return token
        if self.mode == "keyring":
            return None
        return self._read_file().get(key)

    def set(self, key: str, token: str) -> str:
        """Store ``token``; return where it went (for the login message)."""
        if self._keyring_usable():
            try:
                keyring.set_password(SERVICE, key, token)
            except Exception as exc:
                if self.mode == "keyring":
                    raise
                log.debug("keyring not writable: %s", exc)
            else:
                self._drop_from_file(key)  # an older fallback copy must not shadow a newer keyring token
                return "the system keyring"
        created = not self.file.exists()
        tokens = self._read_file()
        tokens[key] = token
        self._write_file(tokens)
        if created:
            log.warning(
                "no system keyring is available, so the login token is stored in %s (readable only by you); "
                "it expires by itself, and `datauploader logout` deletes it",
                self.file,
            )
        return str(self.file)

    def delete(self, key: str) -> None:
        if self._keyring_usable():
            with contextlib.suppress(Exception):
                keyring.delete_password(SERVICE, key)
        self._drop_from_file(key)

    def _drop_from_file(self, key: str) -> None:
        tokens = self._read_file()
        if key in tokens:
            del tokens[key]
            self._write_file(tokens)
