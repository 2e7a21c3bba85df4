"""Quick checks that the fake SciCat backend behaves like the real one where DataUploader depends on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

pytest.importorskip(
    "scicat_sdk_py", reason="fake SciCat needs scicat-sdk-py (pip install scicat-sdk-py==5.1.1)"
)

try:
    from fake_scicat import FakeSciCat, FakeUser, check_body
except ImportError:  # tests/ made a package later
    from tests.fake_scicat import FakeSciCat, FakeUser, check_body  # type: ignore[no-redef]

from scicat_sdk_py.models import CreateDatasetOrigDatablockDto

TIMEOUT = 5


@pytest.fixture
def sc() -> Iterator[FakeSciCat]:
    users = [
        FakeUser("alice", "secret", "alice@example.org", ("p1234", "staff")),
        FakeUser("bob", "hunter2", "bob@example.org", ("p9999",)),
        FakeUser(
            "ingestor", "ingest", "ingestor@example.org", ("ingestors",), ingestor=True, strategies=("local",)
        ),
    ]
    with FakeSciCat(users) as fake:
        yield fake


def login(sc: FakeSciCat, user: str, password: str) -> dict[str, str]:
    r = requests.post(f"{sc.url}/auth/login", json={"username": user, "password": password}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def raw_dataset(**overrides: Any) -> dict[str, Any]:
    body = {
        "type": "raw",
        "datasetName": "run 42",
        "ownerGroup": "p1234",
        "accessGroups": ["staff"],
        "owner": "Alice A",
        "contactEmail": "alice@example.org",
        "principalInvestigator": "Alice A",
        "creationLocation": "/Facility/Beamline",
        "sourceFolder": "/data/p1234/run42",
        "creationTime": "2026-01-02T03:04:05Z",
        "proposalId": "p1234",
    }
    body.update(overrides)
    return body


def block(*sizes: int) -> dict[str, Any]:
    files = [
        {"path": f"f{i}.h5", "size": s, "time": "2026-01-02T03:04:05Z", "chk": "ab" * 32}
        for i, s in enumerate(sizes)
    ]
    return {"size": sum(sizes), "dataFileList": files, "chkAlg": "sha256"}


def create_dataset(sc: FakeSciCat, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    r = requests.post(f"{sc.url}/datasets", json=raw_dataset(**overrides), headers=headers, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_login_201_and_401(sc: FakeSciCat) -> None:
    r = requests.post(
        f"{sc.url}/auth/login", json={"username": "alice", "password": "secret"}, timeout=TIMEOUT
    )
    assert r.status_code == 201
    body = r.json()
    assert body["access_token"] == body["id"] and body["access_token"].count(".") == 2
    assert body["ttl"] == 3600 and body["userId"] and body["created"]
    bad = requests.post(
        f"{sc.url}/auth/login", json={"username": "alice", "password": "nope"}, timeout=TIMEOUT
    )
    assert bad.status_code == 401
    assert (
        requests.post(
            f"{sc.url}/auth/ldap", json={"username": "bob", "password": "hunter2"}, timeout=TIMEOUT
        ).status_code
        == 201
    )
    # the ingestor is a local-only account
    assert (
        requests.post(
            f"{sc.url}/auth/ldap", json={"username": "ingestor", "password": "ingest"}, timeout=TIMEOUT
        ).status_code
        == 401
    )
    sc.ldap_enabled = False
    assert (
        requests.post(
            f"{sc.url}/auth/ldap", json={"username": "bob", "password": "hunter2"}, timeout=TIMEOUT
        ).status_code
        == 404
    )


def test_whoami_and_identity(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    who = requests.get(f"{sc.url}/auth/whoami", headers=h, timeout=TIMEOUT).json()
    assert who["username"] == "alice" and who["currentGroups"] == ["p1234", "staff"]
    ident = requests.get(f"{sc.url}/users/my/identity", headers=h, timeout=TIMEOUT).json()
    assert ident["profile"]["email"] == "alice@example.org" and ident["profile"]["accessGroups"] == [
        "p1234",
        "staff",
    ]
    assert requests.get(f"{sc.url}/users/my/self", timeout=TIMEOUT).status_code == 401


def test_write_without_token_403_and_expired_401(sc: FakeSciCat) -> None:
    r = requests.post(f"{sc.url}/datasets", json=raw_dataset(), timeout=TIMEOUT)
    assert r.status_code == 403
    assert r.json() == {"message": "Forbidden resource", "error": "Forbidden", "statusCode": 403}
    h = login(sc, "alice", "secret")
    sc.advance_clock(3601)
    assert (
        requests.post(f"{sc.url}/datasets", json=raw_dataset(), headers=h, timeout=TIMEOUT).status_code == 401
    )
    h = login(sc, "alice", "secret")
    assert requests.get(f"{sc.url}/auth/whoami", headers=h, timeout=TIMEOUT).status_code == 200
    sc.revoke_all_tokens()
    assert requests.get(f"{sc.url}/auth/whoami", headers=h, timeout=TIMEOUT).status_code == 401
    assert (
        requests.get(
            f"{sc.url}/auth/whoami", headers={"Authorization": "Bearer x.y.z"}, timeout=TIMEOUT
        ).status_code
        == 401
    )


def test_unknown_and_invalid_keys_400(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    r = requests.post(f"{sc.url}/datasets", json=raw_dataset(foo=1), headers=h, timeout=TIMEOUT)
    assert r.status_code == 400
    assert r.json()["error"] == "Bad Request" and r.json()["statusCode"] == 400
    assert "property foo should not exist" in r.json()["message"]
    # snake_case field names are accepted by the SDK model (populate_by_name) but not by the server
    r = requests.post(f"{sc.url}/datasets", json=raw_dataset(dataset_name="x"), headers=h, timeout=TIMEOUT)
    assert r.status_code == 400 and "property dataset_name should not exist" in r.json()["message"]
    r = requests.post(f"{sc.url}/datasets", json=raw_dataset(size="big"), headers=h, timeout=TIMEOUT)
    assert r.status_code == 400 and any(m.startswith("size") for m in r.json()["message"])
    assert sc.datasets == {}


def test_origdatablock_with_dataset_fields_400(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    pid = create_dataset(sc, h)["pid"]
    url = f"{sc.url}/datasets/{quote(pid, safe='')}/origdatablocks"
    for extra in ({"datasetId": pid}, {"ownerGroup": "p1234"}, {"accessGroups": ["staff"]}):
        r = requests.post(url, json={**block(1), **extra}, headers=h, timeout=TIMEOUT)
        assert r.status_code == 400, extra
        assert f"property {next(iter(extra))} should not exist" in r.json()["message"]
    nested = block(1)
    nested["dataFileList"][0]["bogus"] = True
    r = requests.post(url, json=nested, headers=h, timeout=TIMEOUT)
    assert r.status_code == 400 and "dataFileList.0.property bogus should not exist" in r.json()["message"]
    assert sc.origdatablocks == {}


def test_pid_with_slash_round_trips_url_encoded(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    ds = create_dataset(sc, h)
    pid = ds["pid"]
    assert pid.startswith("20.500.12269/")
    r = requests.get(f"{sc.url}/datasets/{quote(pid, safe='')}", headers=h, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["pid"] == pid
    assert "%2F" in sc.requests[-1].path
    assert requests.get(f"{sc.url}/datasets/{pid}", headers=h, timeout=TIMEOUT).status_code == 404
    # other users' datasets are hidden
    assert (
        requests.get(
            f"{sc.url}/datasets/{quote(pid, safe='')}", headers=login(sc, "bob", "hunter2"), timeout=TIMEOUT
        ).status_code
        == 403
    )
    r = requests.patch(
        f"{sc.url}/datasets/{quote(pid, safe='')}", json={"description": "done"}, headers=h, timeout=TIMEOUT
    )
    assert r.status_code == 200 and r.json()["description"] == "done"
    r = requests.patch(
        f"{sc.url}/datasets/{quote(pid, safe='')}", json={"pid": "x"}, headers=h, timeout=TIMEOUT
    )
    assert r.status_code == 400


def test_find_dataset_by_filter(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    pid = create_dataset(sc, h)["pid"]
    create_dataset(sc, h, datasetName="other")
    flt = '{"where": {"datasetName": "run 42", "proposalId": "p1234"}}'
    r = requests.get(f"{sc.url}/datasets", params={"filter": flt}, headers=h, timeout=TIMEOUT)
    assert [d["pid"] for d in r.json()] == [pid]
    assert requests.get(f"{sc.url}/datasets", params={"filter": flt}, timeout=TIMEOUT).json() == []


def test_ownergroup_not_mine_403(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    r = requests.post(f"{sc.url}/datasets", json=raw_dataset(ownerGroup="p9999"), headers=h, timeout=TIMEOUT)
    assert r.status_code == 403


def test_size_and_number_of_files_recomputed(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    pid = create_dataset(sc, h)["pid"]
    url = f"{sc.url}/datasets/{quote(pid, safe='')}/origdatablocks"
    first = requests.post(url, json=block(10, 20), headers=h, timeout=TIMEOUT)
    assert first.status_code == 201 and first.json()["datasetId"] == pid
    assert requests.post(url, json=block(5), headers=h, timeout=TIMEOUT).status_code == 201
    ds = requests.get(f"{sc.url}/datasets/{quote(pid, safe='')}", headers=h, timeout=TIMEOUT).json()
    assert (ds["size"], ds["numberOfFiles"]) == (35, 3)
    listed = requests.get(url, headers=h, timeout=TIMEOUT).json()
    assert len(listed) == 2 and listed[0]["ownerGroup"] == "p1234"
    oid = first.json()["_id"]
    assert requests.delete(f"{url}/{oid}", headers=h, timeout=TIMEOUT).status_code == 200
    assert (sc.datasets[pid]["size"], sc.datasets[pid]["numberOfFiles"]) == (5, 1)


def test_is_valid(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    ok = requests.post(f"{sc.url}/datasets/isValid", json=raw_dataset(), headers=h, timeout=TIMEOUT)
    assert ok.status_code == 200 and ok.json()["valid"] is True
    bad = requests.post(f"{sc.url}/datasets/isValid", json=raw_dataset(foo=1), headers=h, timeout=TIMEOUT)
    assert bad.json()["valid"] is False and "property foo should not exist" in bad.json()["reason"]
    assert sc.datasets == {}


def test_proposals(sc: FakeSciCat) -> None:
    sc.add_proposal("p1234", "p1234", title="Alice's beamtime")
    sc.add_proposal("p9999", "p9999")
    body = {"proposalId": "p5555", "ownerGroup": "p1234", "title": "New", "email": "pi@example.org"}
    alice = login(sc, "alice", "secret")
    assert requests.post(f"{sc.url}/proposals", json=body, headers=alice, timeout=TIMEOUT).status_code == 403
    assert requests.post(f"{sc.url}/proposals", json=body, timeout=TIMEOUT).status_code == 403
    # the role guard answers before validation, as on the real backend
    assert (
        requests.post(f"{sc.url}/proposals", json={"x": 1}, headers=alice, timeout=TIMEOUT).status_code == 403
    )
    ing = login(sc, "ingestor", "ingest")
    assert requests.post(f"{sc.url}/proposals", json=body, headers=ing, timeout=TIMEOUT).status_code == 201
    assert (
        requests.post(f"{sc.url}/proposals", json={**body, "x": 1}, headers=ing, timeout=TIMEOUT).status_code
        == 400
    )
    mine = requests.get(f"{sc.url}/proposals", headers=alice, timeout=TIMEOUT).json()
    assert sorted(p["proposalId"] for p in mine) == ["p1234", "p5555"]
    assert requests.get(f"{sc.url}/proposals/p1234", headers=alice, timeout=TIMEOUT).json()["title"] == (
        "Alice's beamtime"
    )
    assert requests.get(f"{sc.url}/proposals/p9999", headers=alice, timeout=TIMEOUT).status_code == 403


def test_catalogue_down_and_request_log(sc: FakeSciCat) -> None:
    sc.set_down("503", count=1)
    r = requests.post(
        f"{sc.url}/auth/login", json={"username": "alice", "password": "secret"}, timeout=TIMEOUT
    )
    assert r.status_code == 503
    sc.set_down("drop")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sc.url}/datasets", timeout=TIMEOUT)
    sc.set_up()
    login(sc, "alice", "secret")
    assert [(r.method, r.path, r.status) for r in sc.requests] == [
        ("POST", "/api/v3/auth/login", 503),
        ("GET", "/api/v3/datasets", None),
        ("POST", "/api/v3/auth/login", 201),
    ]
    assert sc.requests[-1].body == {"username": "alice", "password": "secret"}


def test_check_body_is_strict_where_from_dict_is_not() -> None:
    body = {**block(1), "datasetId": "x"}
    assert CreateDatasetOrigDatablockDto.from_dict(body) is not None  # the SDK alone would accept it
    instance, errors = check_body(CreateDatasetOrigDatablockDto, body)
    assert instance is None and errors == ["property datasetId should not exist"]
