"""Quick checks that the fake SciCat backend behaves like the real one where DataUploader depends on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

pytest.importorskip(
    "scicat_sdk_py", reason="fake SciCat needs scicat-sdk-py (pip install scicat-sdk-py==5.1.1)"
)

try:
    from fake_scicat import FakeSciCat, FakeUser, check_body, js_date_like
except ImportError:  # tests/ made a package later
    from tests.fake_scicat import FakeSciCat, FakeUser, check_body, js_date_like  # type: ignore[no-redef]

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


def test_token_not_accepted_makes_the_caller_anonymous(sc: FakeSciCat) -> None:
    r = requests.post(f"{sc.url}/datasets", json=raw_dataset(), timeout=TIMEOUT)
    assert r.status_code == 403
    assert r.json() == {"message": "Forbidden resource", "error": "Forbidden", "statusCode": 403}
    sc.add_proposal("pub", "p9999")
    sc.proposals["pub"]["isPublished"] = True
    for spoil in ("expire", "revoke", "garbage"):
        h = login(sc, "alice", "secret")
        ds = create_dataset(sc, h)
        if spoil == "expire":
            sc.advance_clock(3601)
        elif spoil == "revoke":
            sc.revoke_all_tokens()  # as after a change of the server's JWT secret
        else:
            h = {"Authorization": "Bearer x.y.z"}
        # never 401 on data routes: writes are 403, reads show what the public may see
        r = requests.post(f"{sc.url}/datasets", json=raw_dataset(), headers=h, timeout=TIMEOUT)
        assert r.status_code == 403
        assert requests.get(f"{sc.url}/datasets", headers=h, timeout=TIMEOUT).json() == []
        url = f"{sc.url}/datasets/{quote(ds['pid'], safe='')}"
        assert requests.get(url, headers=h, timeout=TIMEOUT).status_code == 403
        proposals = requests.get(f"{sc.url}/proposals", headers=h, timeout=TIMEOUT).json()
        assert [p["proposalId"] for p in proposals] == ["pub"]
        who = requests.get(f"{sc.url}/auth/whoami", headers=h, timeout=TIMEOUT)
        assert who.status_code == 200 and who.content == b""
        assert requests.get(f"{sc.url}/users/my/identity", headers=h, timeout=TIMEOUT).status_code == 401


def test_unknown_and_invalid_keys_400(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    # The v3 dataset routes validate themselves: message is a JSON-encoded list of class-validator errors.
    r = requests.post(f"{sc.url}/datasets", json=raw_dataset(foo=1), headers=h, timeout=TIMEOUT)
    assert r.status_code == 400 and set(r.json()) == {"status", "message"}
    assert json.loads(r.json()["message"]) == [
        {
            "property": "foo",
            "children": [],
            "constraints": {"whitelistValidation": "property foo should not exist"},
        }
    ]
    # snake_case field names are accepted by the SDK model (populate_by_name) but not by the server
    r = requests.post(f"{sc.url}/datasets", json=raw_dataset(dataset_name="x"), headers=h, timeout=TIMEOUT)
    assert r.status_code == 400 and "property dataset_name should not exist" in r.json()["message"]
    r = requests.post(f"{sc.url}/datasets", json=raw_dataset(size="big"), headers=h, timeout=TIMEOUT)
    assert r.status_code == 400 and json.loads(r.json()["message"])[0]["property"] == "size"
    r = requests.post(
        f"{sc.url}/datasets", json=raw_dataset(datasetlifecycle={"_id": "x"}), headers=h, timeout=TIMEOUT
    )
    errors = json.loads(r.json()["message"])
    assert errors[0]["property"] == "datasetlifecycle" and errors[0]["children"][0]["property"] == "_id"
    assert sc.datasets == {}
    # other routes answer in NestJS's usual shape
    ing = login(sc, "ingestor", "ingest")
    r = requests.post(f"{sc.url}/proposals", json={"x": 1}, headers=ing, timeout=TIMEOUT)
    assert (
        r.status_code == 400 and r.json()["error"] == "Bad Request" and isinstance(r.json()["message"], list)
    )


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


def test_find_dataset_by_filter_and_date_like_values(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    pid = create_dataset(sc, h, datasetName="scanA", proposalId="2024-001")["pid"]
    create_dataset(sc, h, datasetName="other", proposalId="2024-001")

    def find(where: dict[str, Any], headers: dict[str, str] = h) -> list[str]:
        flt = {"filter": json.dumps({"where": where})}
        r = requests.get(f"{sc.url}/datasets", params=flt, headers=headers, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return [d["pid"] for d in r.json()]

    # "2024-001" reads as a date to JavaScript: the server compares with a date and finds nothing
    assert find({"datasetName": "scanA", "proposalId": "2024-001"}) == []
    assert find({"datasetName": "scanA", "proposalId": {"$in": ["2024-001"]}}) == [pid]
    assert find({"datasetName": {"inq": ["scanA"]}, "proposalIds": {"$in": ["2024-001"]}}) == [pid]
    assert find({"datasetName": "scanA"}) == [pid]  # not date-like: compared as a string
    assert find({"datasetName": {"$in": ["scanA"]}}, {}) == []  # anonymous: only public datasets


# Measured with Node 20 (is new Date(s) valid?): what the backend's WherePipe turns into dates.
DATE_LIKE = {
    "20261": True, "2024-001": True, "MX-4711": True, "scan-001": True, "scan 5": True, "run 12": True,
    "run 42": True, "demo-2026": True, "p 1": True, "marker 5": True, "12:60": True, "2024-01-01": True,
    "scanA": False, "p1234": False, "LaB6": False, "scan_001": False, "run42": False, "frame_01.bin": False,
    "sub/frame_00.bin": False, "alice@example.org": False, "13": False, "1:2": False, "2024-13": False,
    "1 a": False, "x 1 2 3 4": False, "1234567": False, "hello world": False, "32:1": False,
}  # fmt: skip


def test_js_date_like_matches_node() -> None:
    assert {s: js_date_like(s) for s in DATE_LIKE} == DATE_LIKE


def test_ownergroup_not_mine_403(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    r = requests.post(f"{sc.url}/datasets", json=raw_dataset(ownerGroup="p9999"), headers=h, timeout=TIMEOUT)
    assert r.status_code == 403


def test_v3_block_routes_totals_and_the_100_block_cap(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    pid = create_dataset(sc, h)["pid"]
    url = f"{sc.url}/datasets/{quote(pid, safe='')}/origdatablocks"
    first = requests.post(url, json=block(10, 20), headers=h, timeout=TIMEOUT)
    assert first.status_code == 201 and first.json()["datasetId"] == pid
    assert requests.post(url, json=block(5), headers=h, timeout=TIMEOUT).status_code == 201
    ds = requests.get(f"{sc.url}/datasets/{quote(pid, safe='')}", headers=h, timeout=TIMEOUT).json()
    assert (ds["size"], ds["numberOfFiles"]) == (35, 3)
    # the totals are arithmetic on the block's size as sent, not on the files' sizes
    assert requests.post(url, json={**block(1), "size": 1000}, headers=h, timeout=TIMEOUT).status_code == 201
    assert (sc.datasets[pid]["size"], sc.datasets[pid]["numberOfFiles"]) == (1035, 4)
    oid = first.json()["_id"]
    r = requests.patch(f"{url}/{oid}", json=block(7), headers=h, timeout=TIMEOUT)  # - old + new
    assert r.status_code == 200 and (sc.datasets[pid]["size"], sc.datasets[pid]["numberOfFiles"]) == (1012, 3)
    # deleting a block needs DELETE_GROUPS
    assert requests.delete(f"{url}/{oid}", headers=h, timeout=TIMEOUT).status_code == 403
    for _ in range(120):
        assert requests.post(url, json=block(1), headers=h, timeout=TIMEOUT).status_code == 201
    # the dataset's own route stops at 100 blocks and takes no filter
    assert len(requests.get(url, headers=h, timeout=TIMEOUT).json()) == 100
    assert requests.get(f"{url}/count", headers=h, timeout=TIMEOUT).json() == {"count": 123}
    # the filterable route pages through all of them (default limit 100)
    blocks_url = f"{sc.url}/origdatablocks"
    flt: dict[str, Any] = {"where": {"datasetId": pid}}
    r = requests.get(blocks_url, params={"filter": json.dumps(flt)}, headers=h, timeout=TIMEOUT)
    assert len(r.json()) == 100
    ids = []
    for skip in (0, 50, 100):
        flt["limits"] = {"limit": 50, "skip": skip, "order": "_id:asc"}
        r = requests.get(blocks_url, params={"filter": json.dumps(flt)}, headers=h, timeout=TIMEOUT)
        ids += [b["_id"] for b in r.json()]
    assert len(ids) == len(set(ids)) == 123
    one = requests.get(f"{blocks_url}/{ids[0]}", headers=h, timeout=TIMEOUT)
    assert one.status_code == 200 and one.json()["datasetId"] == pid
    # the v3 top-level routes total the first 100 blocks only
    r = requests.post(blocks_url, json={**block(1), "datasetId": pid}, headers=h, timeout=TIMEOUT)
    assert r.status_code == 201 and sc.datasets[pid]["numberOfFiles"] == 100  # of 124 files


def test_is_valid(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    url = f"{sc.url}/datasets/isValid"
    ok = requests.post(url, json=raw_dataset(), headers=h, timeout=TIMEOUT)
    assert ok.status_code == 200 and ok.json() == {"valid": True}
    bad = requests.post(url, json=raw_dataset(contactEmail=None, owner=5), headers=h, timeout=TIMEOUT).json()
    assert bad["valid"] is False and "reason" not in bad
    assert sorted(e.split()[0] for e in bad["error"].split("; ")) == ["contactEmail", "owner"]
    # no whitelist here: an unknown key passes (POST /datasets then refuses it)
    assert requests.post(url, json=raw_dataset(foo=1), headers=h, timeout=TIMEOUT).json() == {"valid": True}
    # and the account must be allowed to create the dataset at all
    assert (
        requests.post(url, json=raw_dataset(ownerGroup="p9999"), headers=h, timeout=TIMEOUT).status_code
        == 403
    )
    assert sc.datasets == {}


def test_server_side_defaults_and_quantities(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    meta = {"temperature": {"value": 300, "unit": "K"}, "gap": {"value": 2.5, "unit": "mm"}}
    body = raw_dataset(scientificMetadata=meta)
    del body["proposalId"]
    r = requests.post(f"{sc.url}/datasets", json=body, headers=h, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    ds = r.json()
    lifecycle = ds["datasetlifecycle"]
    assert lifecycle["archivable"] is True and lifecycle["archiveStatusMessage"] == "datasetCreated"
    assert "_id" in lifecycle and ds["version"] == "v3"
    assert (ds["size"], ds["numberOfFiles"], ds["packedSize"]) == (0, 0, 0)
    stored = sc.dataset(ds["pid"])
    assert stored["proposalIds"] == [None] and stored["sampleIds"] == [None] and ds["proposalId"] is None
    assert ds["scientificMetadata"]["gap"] == {"value": 2.5, "unit": "mm", "valueSI": 0.0025, "unitSI": "m"}
    # echoing the lifecycle back, with its _id, is refused
    url = f"{sc.url}/datasets/{quote(ds['pid'], safe='')}"
    r = requests.patch(url, json={"datasetlifecycle": lifecycle}, headers=h, timeout=TIMEOUT)
    assert r.status_code == 400 and "property _id should not exist" in r.json()["message"]


def test_groups_admin_privileged_lifecycle(sc: FakeSciCat) -> None:
    sc.privileged_groups = {"ingestors"}
    sc.add_user(FakeUser("admin", "a", "admin@example.org", ("admin",)))
    sc.add_user(FakeUser("archiver", "a", "arch@example.org", ("archivemanager",)))
    sc.add_proposal("p1234", "p1234")
    mine = create_dataset(sc, login(sc, "alice", "secret"))
    # a privileged creator creates datasets and blocks for any group, but may not read or update them
    ing = login(sc, "ingestor", "ingest")
    theirs = create_dataset(sc, ing, ownerGroup="p9999")
    url = f"{sc.url}/datasets/{quote(theirs['pid'], safe='')}"
    assert (
        requests.post(f"{url}/origdatablocks", json=block(3), headers=ing, timeout=TIMEOUT).status_code == 201
    )
    r = requests.patch(url, json={"endTime": "2026-01-01T00:00:00Z"}, headers=ing, timeout=TIMEOUT)
    assert r.status_code == 403
    assert requests.get(url, headers=ing, timeout=TIMEOUT).status_code == 403
    assert requests.get(f"{sc.url}/datasets", headers=ing, timeout=TIMEOUT).json() == []
    # an admin reads and writes everything and sees every proposal
    adm = login(sc, "admin", "a")
    assert requests.patch(url, json={"description": "x"}, headers=adm, timeout=TIMEOUT).status_code == 200
    assert len(requests.get(f"{sc.url}/datasets", headers=adm, timeout=TIMEOUT).json()) == 2
    proposals = requests.get(f"{sc.url}/proposals", headers=adm, timeout=TIMEOUT).json()
    assert [p["proposalId"] for p in proposals] == ["p1234"]
    # an archive manager reads every dataset
    arch = login(sc, "archiver", "a")
    mine_url = f"{sc.url}/datasets/{quote(mine['pid'], safe='')}"
    assert requests.get(mine_url, headers=arch, timeout=TIMEOUT).status_code == 200


def test_v4_routes_and_their_quirks(sc: FakeSciCat) -> None:
    h = login(sc, "alice", "secret")
    body = raw_dataset()
    body["proposalIds"] = [body.pop("proposalId")]
    body["principalInvestigators"] = [body.pop("principalInvestigator")]
    r = requests.post(f"{sc.url_v4}/datasets", json=body, headers=h, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["version"] == "v4" and ds["proposalIds"] == ["p1234"] and "proposalId" not in ds
    valid = requests.post(f"{sc.url_v4}/datasets/isValid", json=body, headers=h, timeout=TIMEOUT)
    assert valid.json() == {"valid": True}
    pid = ds["pid"]
    for i in range(12):
        b = {**block(100 + i), "datasetId": pid}
        assert (
            requests.post(f"{sc.url_v4}/origdatablocks", json=b, headers=h, timeout=TIMEOUT).status_code
            == 201
        )
    # totals from the 10 newest blocks only
    assert (sc.datasets[pid]["numberOfFiles"], sc.datasets[pid]["size"]) == (10, sum(range(102, 112)))

    def blocks(flt: dict[str, Any]) -> int:
        params = {"filter": json.dumps(flt)}
        return len(
            requests.get(f"{sc.url_v4}/origdatablocks", params=params, headers=h, timeout=TIMEOUT).json()
        )

    assert blocks({"where": {"datasetId": pid}}) == 10
    assert (
        blocks({"where": {"datasetId": pid}, "limits": {"limit": 100, "skip": 0, "sort": {"_id": "asc"}}})
        == 12
    )
    # a PATCH resets what it does not send
    url = f"{sc.url_v4}/datasets/{quote(pid, safe='')}"
    r = requests.patch(url, json={"description": "x"}, headers=h, timeout=TIMEOUT)
    assert r.status_code == 200 and (r.json()["size"], r.json()["numberOfFiles"]) == (0, 0)
    r = requests.patch(
        url, json={"size": 5, "numberOfFiles": 12, "packedSize": 0}, headers=h, timeout=TIMEOUT
    )
    assert (r.json()["size"], r.json()["numberOfFiles"]) == (5, 12)
    # v4 filters are not run through the date conversion
    params = {"filter": json.dumps({"where": {"datasetName": "run 42"}})}
    found = requests.get(f"{sc.url_v4}/datasets", params=params, headers=h, timeout=TIMEOUT).json()
    assert [d["pid"] for d in found] == [pid]


def test_health_needs_no_login(sc: FakeSciCat) -> None:
    r = requests.get(f"{sc.url}/health", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["status"] == "ok"


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
