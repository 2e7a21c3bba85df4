"""The pieces under the SciCat adapter, in-process: token store (keyring, 0600 file fallback), JWT claims, error
mapping, and the v4 request shapes (checked against the SDK models, as the fake does for v3)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import pytest

pytest.importorskip(
    "scicat_sdk_py", reason="fake SciCat needs scicat-sdk-py (pip install scicat-sdk-py==5.1.1)"
)

from scicat_sdk_py.models import CreateDatasetDto, CreateOrigDatablockDto

from engine import jwt
from engine.catalogue import (
    AuthError,
    Credentials,
    DatasetSpec,
    FileEntry,
    InvalidMetadata,
    TransientError,
)
from engine.catalogue.local import LocalCatalogue
from engine.catalogue.scicat import SciCatCatalogue
from engine.config import SciCatSettings
from engine.credentials import STORE_ENV, TokenStore
from tests.fake_scicat import FakeSciCat, FakeUser, check_body


class MemoryKeyring(keyring.backend.KeyringBackend):
    priority = 10  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


class BrokenKeyring(MemoryKeyring):
    """A keyring that is there but cannot store (a locked Secret Service without a prompt, say)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringError("locked")


@pytest.fixture
def use_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(STORE_ENV, raising=False)
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)


# ------------------------------------------------------------------------------------------ token store


def test_keyring_first(tmp_path: Path, use_keyring: None) -> None:
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    store = TokenStore(tmp_path)
    assert store.set("scicat:http://x/api/v3", "tok1") == "the system keyring"
    assert store.get("scicat:http://x/api/v3") == "tok1"
    assert not (tmp_path / "tokens.json").exists()
    store.delete("scicat:http://x/api/v3")
    assert store.get("scicat:http://x/api/v3") is None and not ring.items


def test_file_fallback_0600_with_one_warning(
    tmp_path: Path, use_keyring: None, caplog: pytest.LogCaptureFixture
) -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())
    store = TokenStore(tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        store.set("a", "tok-a")
        store.set("b", "tok-b")
    warnings = [r for r in caplog.records if "readable only by you" in r.getMessage()]
    assert len(warnings) == 1
    path = tmp_path / "data" / "tokens.json"
    if os.name == "posix":  # Windows has no mode bits; the profile folder's ACL is per-user
        assert path.stat().st_mode & 0o777 == 0o600
    assert (store.get("a"), store.get("b")) == ("tok-a", "tok-b")
    store.delete("a")
    store.delete("b")
    assert not path.exists() and store.get("a") is None


def test_broken_keyring_falls_back_to_file_and_env_forces_file(
    tmp_path: Path, use_keyring: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring.set_keyring(BrokenKeyring())
    store = TokenStore(tmp_path)
    assert store.set("k", "t") == str(tmp_path / "tokens.json") and store.get("k") == "t"
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    monkeypatch.setenv(STORE_ENV, "file")
    TokenStore(tmp_path).set("k", "t2")
    assert not ring.items and TokenStore(tmp_path).get("k") == "t2"


# ----------------------------------------------------------------------------------------------- JWT


def test_jwt_claims_and_expiry() -> None:
    from tests.fake_scicat import make_jwt

    token = make_jwt({"username": "a", "exp": 1_900_000_000}, b"k")
    assert jwt.claims(token)["username"] == "a" and jwt.expiry(token) == 1_900_000_000.0
    assert jwt.expiry(make_jwt({"username": "a"}, b"k")) is None
    for bad in ("", "a.b", "x.!!!.y", "a.bnVsbA.c"):
        with pytest.raises(ValueError):
            jwt.claims(bad)
        assert jwt.expiry(bad) is None


# --------------------------------------------------------------------------------------- the adapter


@pytest.fixture
def sc() -> Iterator[FakeSciCat]:
    with FakeSciCat([FakeUser("alice", "secret", "alice@example.org", ("p1234",))]) as fake:
        fake.add_proposal("p1234", "p1234", pi_email="pi@example.org")
        yield fake


def adapter(
    sc: FakeSciCat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: object
) -> SciCatCatalogue:
    monkeypatch.setenv(STORE_ENV, "file")
    cat = SciCatCatalogue(SciCatSettings(url=sc.url, **settings), TokenStore(tmp_path), "p")  # type: ignore[arg-type]
    cat.login(Credentials(username="alice", password="secret"))
    return cat


SPEC = DatasetSpec(
    name="d", investigation="p1234", location="/s/p1234/d", meta={"k": "v"}, created=1.7e9, target="p1234/d"
)


def test_v4_bodies_match_the_v4_models(
    sc: FakeSciCat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = adapter(sc, tmp_path, monkeypatch, api="v4", source_folder="/gpfs/raw/")
    body = cat.datasets.body(SPEC)
    instance, errors = check_body(CreateDatasetDto, body)
    assert instance is not None, errors
    assert body["proposalIds"] == ["p1234"] and body["principalInvestigators"] == ["pi@example.org"]
    assert body["sourceFolder"] == "/gpfs/raw/p1234/d"
    block = cat.blocks.body("20.500/x", [FileEntry("a/b.h5", 3, 1.7e9, "ab" * 32)])
    instance, errors = check_body(CreateOrigDatablockDto, block)
    assert instance is not None and block["datasetId"] == "20.500/x", errors
    assert cat.api.dataset_url("20.500/x").endswith("/api/v4/datasets/20.500%2Fx")


def test_errors_are_typed(sc: FakeSciCat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cat = adapter(sc, tmp_path, monkeypatch)
    sc.set_down("503", count=1)
    with pytest.raises(TransientError):
        cat.list_investigations()
    sc.set_down("drop", count=1)
    with pytest.raises(TransientError):
        cat.create_dataset(SPEC)
    with pytest.raises(InvalidMetadata) as exc:
        cat.api.call("POST", f"{sc.url}/datasets", body={"type": "raw", "datasetName": "x", "bogus": 1})
    assert "bogus" in exc.value.fields
    sc.revoke_all_tokens()
    with pytest.raises(AuthError):
        cat.list_investigations()
    assert cat.session() is None
    with pytest.raises(AuthError):
        cat.login(Credentials(username="alice", password="wrong"))


def test_registered_files_are_recognised(
    sc: FakeSciCat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = adapter(sc, tmp_path, monkeypatch)
    pid = cat.create_dataset(SPEC)
    one, two = FileEntry("a", 1, 1.7e9, "aa" * 32), FileEntry("b", 2, 1.7e9, "bb" * 32)
    cat.append_files(pid, [one])
    assert cat.registered(pid, [one, two]) == {"a"}
    assert cat.registered(pid, [FileEntry("a", 1, 1.7e9, "cc" * 32)]) == set()  # another version of it
    local = LocalCatalogue(tmp_path / "cat.sqlite")
    lpid = local.create_dataset(SPEC)
    local.append_files(lpid, [one])
    assert local.registered(lpid, [one, two]) == {"a"}
    local.close()


# ------------------------------------------------------------------------- --meta, reasons, source folder


def test_meta_values_are_typed() -> None:
    from engine.datasets import parse_meta

    pairs = ["a=300", " b = -1.5e3 ", "c=300 K", "d=2.5 mm", 'e="300 K"', "f=LaB6", "g=3 4 K", "h=1e", "i=",
             "j=true", 'k=""', "l=0.5 Å"]  # fmt: skip
    assert parse_meta(pairs) == {
        "a": 300,
        "b": -1500.0,
        "c": {"value": 300, "unit": "K"},
        "d": {"value": 2.5, "unit": "mm"},
        "e": "300 K",
        "f": "LaB6",
        "g": "3 4 K",
        "h": "1e",
        "i": "",
        "j": "true",
        "k": "",
        "l": {"value": 0.5, "unit": "Å"},
    }
    from engine.rocrate import property_value

    assert property_value("c", {"value": 300, "unit": "K"}) == {
        "@type": "PropertyValue", "name": "c", "value": 300, "unitText": "K"
    }  # fmt: skip
    assert property_value("a", 300)["value"] == 300


def test_scicat_reasons_become_lines() -> None:
    import json

    from engine.catalogue.scicat.reasons import answer_reasons

    nested = [
        {"property": "contactEmail", "children": [], "constraints": {"isEmail": "contactEmail must be an email"}},
        {"property": "techniques", "children": [
            {"property": "0", "children": [
                {"property": "pid", "children": [], "constraints": {"isString": "pid must be a string"}}]}]},
    ]  # fmt: skip
    lines, fields = answer_reasons({"status": 400, "message": json.dumps(nested)})
    assert lines == ["contactEmail must be an email", "techniques.0.pid must be a string"]
    assert fields == ["contactEmail", "techniques.0.pid"]
    assert answer_reasons({"message": ["property foo should not exist"]}) == (
        ["property foo should not exist"], ["foo"]
    )  # fmt: skip
    assert answer_reasons({"message": "Forbidden resource"})[0] == ["Forbidden resource"]


def test_source_folder_template_is_checked_when_the_config_is_read(tmp_path: Path) -> None:
    from engine.config import _check_source_folder
    from engine.errors import ConfigError

    _check_source_folder("/raw/{investigation}/{dataset}", "k", tmp_path)
    _check_source_folder("/raw/{target}", "k", tmp_path)
    for bad in ("/raw/{proposal}", "/raw/{dataset!r}", "/raw/{dataset:>5}", "/raw/{dataset", " "):
        with pytest.raises(ConfigError):
            _check_source_folder(bad, "k", tmp_path)
