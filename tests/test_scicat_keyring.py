"""``datauploader login`` keeps the token in the OS keyring when there is one (no token file, no password).

The keyring here is a test backend selected the way a user would, with ``PYTHON_KEYRING_BACKEND``; it lives in this
small module because every CLI process imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import keyring.backend
import pytest


class JsonKeyring(keyring.backend.KeyringBackend):
    """A keyring shared between processes: a JSON file named by ``TEST_KEYRING_FILE``."""

    priority = 10  # type: ignore[assignment]

    @property
    def path(self) -> Path:
        return Path(os.environ["TEST_KEYRING_FILE"])

    def _load(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}  # type: ignore[no-any-return]

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}|{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        self.path.write_text(json.dumps({**self._load(), f"{service}|{username}": password}))

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        data.pop(f"{service}|{username}", None)
        self.path.write_text(json.dumps(data))


def test_cli_login_stores_token_in_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip(
        "scicat_sdk_py", reason="fake SciCat needs scicat-sdk-py (pip install scicat-sdk-py==5.1.1)"
    )
    from tests.conftest import REPO, Cli
    from tests.fake_scicat import FakeSciCat, FakeUser

    monkeypatch.delenv("DATAUPLOADER_TOKEN_STORE", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", f"{__name__}.JsonKeyring")
    monkeypatch.setenv("TEST_KEYRING_FILE", str(tmp_path / "ring.json"))
    cli = Cli(tmp_path / "home")
    with FakeSciCat([FakeUser("alice", "secret", "alice@example.org", ("p1",))]) as sc:
        cli.write_config(
            f'[profiles.default]\nstorage = {json.dumps(str(cli.storage))}\ncatalogue = "scicat"\n'
            f'[profiles.default.scicat]\nurl = "{sc.url}"\n'
        )
        p = subprocess.run(
            cli.argv("login", "--username", "alice", "--password-stdin"),
            env=cli.env,
            input="secret\n",
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
        assert not (cli.home / "tokens.json").exists() and "readable only by you" not in p.stderr
        ring = json.loads((tmp_path / "ring.json").read_text())
        assert list(ring) == [f"datauploader|scicat:{sc.url}"] and "secret" not in json.dumps(ring)
        assert cli("whoami").code == 0
        assert cli("logout").code == 0
        assert json.loads((tmp_path / "ring.json").read_text()) == {}
