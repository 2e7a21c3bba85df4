"""DataUploader against a SciCat backend (the fake in ``fake_scicat.py``, real HTTP on 127.0.0.1), through the CLI.

Login, proposals, validation before any transfer, origdatablock chunking, an unreachable catalogue, a crash
between storage and registration, and a login that expires in the middle of a sync.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "scicat_sdk_py", reason="fake SciCat needs scicat-sdk-py (pip install scicat-sdk-py==5.1.1)"
)

import engine.core
from engine import DatasetSpec, Engine, Event, LoginExpiring
from tests.conftest import REPO, Cli, Result, ensure_stopped, posix_signals, tree_bytes, wait_for, write_tree
from tests.fake_scicat import ApiError, FakeSciCat, FakeUser, _Ctx

USERS = [
    FakeUser("alice", "secret", "alice@example.org", ("p1234", "staff")),
    FakeUser("bob", "hunter2", "bob@example.org", ("p9999",)),
    FakeUser(
        "ingestor", "ingest", "ingestor@example.org", ("ingestors",), ingestor=True, strategies=("local",)
    ),
]


@pytest.fixture(autouse=True)
def _file_token_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the keyring of the machine running the tests."""
    monkeypatch.setenv("DATAUPLOADER_TOKEN_STORE", "file")


@pytest.fixture
def sc() -> Iterator[FakeSciCat]:
    with FakeSciCat(USERS) as fake:
        fake.add_proposal("p1234", "p1234", title="Alice's beamtime", abstract="Powder diffraction")
        fake.add_proposal("p9999", "p9999", title="Bob's beamtime")
        yield fake


def configure(cli: Cli, sc: FakeSciCat, scicat: str = "", profile: str = "") -> None:
    cli.write_config(
        f'[profiles.default]\nstorage = {json.dumps(str(cli.storage))}\ncatalogue = "scicat"\n{profile}\n'
        f'[profiles.default.scicat]\nurl = "{sc.url}"\n{scicat}\n'
    )


def run_input(cli: Cli, stdin: str, *args: str) -> Result:
    p = subprocess.run(
        cli.argv(*args), env=cli.env, input=stdin, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    return Result(p.returncode, p.stdout, p.stderr)


def login(cli: Cli, user: str = "alice", password: str = "secret") -> Result:
    r = run_input(cli, password + "\n", "login", "--username", user, "--password-stdin")
    assert r.code == 0, (r.out, r.err)
    return r


def logged_in_with_files(cli: Cli, sc: FakeSciCat, tmp_path: Path, n: int) -> Path:
    """The usual start: a SciCat profile, alice logged in, ``n`` files in ``tmp_path/src``."""
    configure(cli, sc)
    login(cli)
    src = tmp_path / "src"
    make_files(src, n)
    return src


def make_files(src: Path, n: int, prefix: str = "frame") -> dict[str, bytes]:
    files = {
        f"{prefix}_{i:02d}.bin" if i % 2 else f"sub/{prefix}_{i:02d}.bin": os.urandom(1000 + i)
        for i in range(n)
    }
    write_tree(src, files)
    return files


def listed(sc: FakeSciCat, pid: str) -> Counter[tuple[str, str]]:
    """Every (path, chk) listed in the dataset's origdatablocks, with how often."""
    return Counter((f["path"], f["chk"]) for b in sc.blocks_of(pid) for f in b["dataFileList"])


def expected(src: Path) -> Counter[tuple[str, str]]:
    return Counter((rel, hashlib.sha256(data).hexdigest()) for rel, data in tree_bytes(src).items())


def only_dataset(sc: FakeSciCat) -> dict[str, Any]:
    assert len(sc.datasets) == 1, list(sc.datasets)
    return next(iter(sc.datasets.values()))


def route(sc: FakeSciCat, method: str, *segments: str) -> Any:
    return next(r for r in sc._routes if r.method == method and r.segments == segments)


# ------------------------------------------------------------------------------------------------ login


def test_login_whoami_logout_and_wrong_password(cli: Cli, sc: FakeSciCat) -> None:
    configure(cli, sc)
    r = cli("whoami")
    assert r.code == 2 and "run `datauploader login`" in r.err
    bad = run_input(cli, "nope\n", "login", "--username", "alice", "--password-stdin")
    assert bad.code == 2 and "wrong user name or password" in bad.err
    assert "nope" not in bad.out + bad.err
    r = login(cli)
    assert "alice@example.org" in r.out and "p1234, staff" in r.out
    assert "readable only by you" in r.err  # the one-time warning about the file fallback
    token_file = cli.home / "tokens.json"
    if os.name == "posix":  # Windows has no mode bits; the profile folder's ACL is per-user
        assert token_file.stat().st_mode & 0o777 == 0o600
    assert "secret" not in token_file.read_text()  # the password is never stored
    r = cli("whoami")
    assert r.code == 0 and "user:    alice" in r.out and "expires:" in r.out
    assert "readable only by you" not in login(cli).err  # warned once, when the file was created
    assert cli("logout").code == 0
    assert cli("whoami").code == 2
    assert [(q.method, q.path.rsplit("/", 1)[-1], q.status) for q in sc.requests_for("POST", "/auth/")][
        :2
    ] == [
        ("POST", "login", 401),
        ("POST", "login", 201),
    ]


def test_pasted_token_and_ldap(cli: Cli, sc: FakeSciCat) -> None:
    configure(cli, sc, 'auth = "ldap"')
    r = run_input(cli, sc.token_for("bob") + "\n", "login", "--token-stdin")
    assert r.code == 0 and "bob@example.org" in r.out, r.err
    assert run_input(cli, "not-a-token\n", "login", "--token-stdin").code == 2
    r = run_input(cli, "hunter2\n", "login", "--username", "bob", "--password-stdin")
    assert r.code == 0, r.err
    assert sc.requests_for("POST", "/auth/ldap")[-1].status == 201


def test_upload_refused_without_login_or_with_expired_token(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    configure(cli, sc)
    src = tmp_path / "src"
    make_files(src, 3)
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 2 and "run `datauploader login`" in r.err, r.err
    assert not cli.storage.exists() or not any(cli.storage.rglob("*.bin"))
    assert not sc.requests_for("POST", "/datasets")
    # A token that expires within seconds is treated as expired: no upload starts on it.
    assert run_input(cli, sc.token_for("alice", lifetime=6) + "\n", "login", "--token-stdin").code == 0
    time.sleep(1.5)
    r = cli("sync", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 2 and "run `datauploader login`" in r.err, r.err


# ------------------------------------------------------------------------------------------- upload


def test_upload_registers_dataset_and_every_file_once(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    configure(cli, sc, 'keywords = ["XRD"]')
    login(cli)
    src = tmp_path / "src"
    make_files(src, 6)
    args = (
        "upload",
        str(src),
        "--dataset",
        "run 42",
        "--investigation",
        "p1234",
        "--description",
        "LaB6 scan",
    )
    r = cli(*args, "--meta", "sample=LaB6", "--investigation-description", "Beamtime notes")
    assert r.code == 0, (r.out, r.err)
    ds = only_dataset(sc)
    assert ds["datasetName"] == "run 42" and ds["proposalId"] == "p1234" and ds["ownerGroup"] == "p1234"
    assert ds["description"] == "LaB6 scan" and ds["keywords"] == ["XRD"]
    assert ds["scientificMetadata"] == {"sample": "LaB6", "investigation_description": "Beamtime notes"}
    assert ds["sourceFolder"] == str(cli.storage / "p1234" / "run 42")
    assert ds["contactEmail"] == "alice@example.org" and ds["type"] == "raw" and ds.get("endTime")
    assert listed(sc, ds["pid"]) == expected(src)
    assert (ds["numberOfFiles"], ds["size"]) == (6, sum(len(b) for b in tree_bytes(src).values()))
    assert all(b["chkAlg"] == "sha256" for b in sc.blocks_of(ds["pid"]))
    assert "%2F" in sc.requests_for("POST", "/origdatablocks")[0].path  # the PID's slash is URL-encoded
    status = cli.status()["datasets"][0]
    assert status["catalogue"] == {"name": "scicat", "id": ds["pid"]} and status["state"] == "complete"

    # Again: nothing moves, nothing is registered twice.
    assert cli(*args).code == 0
    assert listed(sc, ds["pid"]) == expected(src)
    # A file changed at the source: its entry is replaced (one entry per path, with the current checksum).
    (src / "frame_01.bin").write_bytes(b"changed")
    assert cli(*args).code == 0
    assert listed(sc, ds["pid"]) == expected(src)
    assert len(sc.datasets) == 1 and len(sc.blocks_of(ds["pid"])) == 1


def test_origdatablocks_are_chunked(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    configure(cli, sc, "block_files = 3")
    login(cli)
    src = tmp_path / "src"
    make_files(src, 7)
    assert cli("upload", str(src), "--dataset", "d", "--investigation", "p1234").code == 0
    ds = only_dataset(sc)
    assert sorted(len(b["dataFileList"]) for b in sc.blocks_of(ds["pid"])) == [1, 3, 3]
    assert listed(sc, ds["pid"]) == expected(src) and ds["numberOfFiles"] == 7
    for req in sc.requests_for("POST", "/origdatablocks"):
        assert set(req.body) == {"size", "chkAlg", "dataFileList"}  # nothing the real server refuses


def test_invalid_metadata_stops_before_any_transfer(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 3)
    # The real server validates more than the SDK models (e.g. a metadata schema): answer like it does.
    route(sc, "POST", "datasets", "isValid").handler = lambda ctx: (
        200,
        {"valid": False, "reason": ["scientificMetadata.sample must be a registered sample id"]},
    )
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234", "--meta", "sample=x")
    assert r.code == 2 and "scientificMetadata.sample" in r.err, r.err
    assert not cli.storage.exists() or not any(p.is_file() for p in cli.storage.rglob("*"))
    assert not sc.datasets and not sc.requests_for("POST", "/origdatablocks")


# --------------------------------------------------------------------------------------------- proposals


def test_proposals_list_create_and_403(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    configure(cli, sc)
    login(cli)
    r = cli("investigations", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out) == [
        {"id": "p1234", "title": "Alice's beamtime", "description": "Powder diffraction", "pi": None}
    ]
    src = tmp_path / "src"
    make_files(src, 2)
    # Without a title and a PI nobody creates a proposal; an ordinary user may not anyway: pick an existing one.
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p5555")
    assert r.code == 2 and "pick an existing one" in r.err and "--investigation-title" in r.err, r.err
    assert not sc.requests_for("POST", "/proposals")
    new = ("--investigation-title", "Alice's new beamtime", "--pi", "pi@example.org")
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p5555", *new)
    assert r.code == 2 and "pick an existing one" in r.err, r.err
    assert sc.requests_for("POST", "/proposals")[-1].status == 403 and "p5555" not in sc.proposals
    # A proposal of someone else's group is not ours to upload to.
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p9999")
    assert r.code == 2 and "no access" in r.err, r.err
    # A group the user is not in: SciCat answers 403 when the dataset is created, before anything moves.
    configure(cli, sc, 'owner_group = "p9999"')
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 2 and "owned by group 'p9999'" in r.err, r.err
    assert sc.requests_for("POST", "/datasets")[-1].status == 403
    assert not sc.datasets and not any(p.is_file() for p in cli.storage.rglob("*"))

    # A functional (ingestor) account may create it, with the title and PI the user gave (never its own e-mail
    # or the id); the investigation description becomes its abstract.
    configure(cli, sc)
    login(cli, "ingestor", "ingest")
    r = cli("upload", str(src), "--dataset", "d2", "--investigation", "p7777", "--investigation-description", "New",
            *new)  # fmt: skip
    assert r.code == 0, (r.out, r.err)
    proposal = sc.proposals["p7777"]
    assert proposal["abstract"] == "New" and proposal["ownerGroup"] == "ingestors"
    assert (proposal["title"], proposal["email"], proposal["pi_email"]) == (new[1], new[3], new[3])
    ds = only_dataset(sc)
    assert ds["proposalId"] == "p7777" and not ds["scientificMetadata"]
    assert ds["principalInvestigator"] == "pi@example.org"


# ------------------------------------------------------------------------------ outages and crashes


def test_catalogue_down_for_a_while_uploads_go_on(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 4)
    sc.clear_requests()
    sc.set_down("drop", seconds=3, from_first_request=True)  # (under Wine the CLI alone takes 2-4 s to start)
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 0, (r.out, r.err)
    assert "uploading anyway" in r.err  # it did not wait for the catalogue to move the data
    statuses = [q.status for q in sc.requests]
    assert None in statuses and statuses.index(None) < statuses.index(201)
    assert listed(sc, only_dataset(sc)["pid"]) == expected(src)


def test_lost_answer_is_not_registered_twice(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 3)
    block_route = route(sc, "POST", "datasets", "{pid}", "origdatablocks")
    original = block_route.handler
    calls = []

    def stored_then_500(ctx: _Ctx) -> tuple[int, Any]:
        answer = original(ctx)
        calls.append(answer[0])
        if len(calls) == 1:
            raise RuntimeError("proxy timeout after the block was stored")
        return answer  # type: ignore[no-any-return]

    block_route.handler = stored_then_500
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 0, (r.out, r.err)
    assert len(calls) == 1  # the retry asked what arrived instead of posting again
    assert listed(sc, only_dataset(sc)["pid"]) == expected(src)


@posix_signals
def test_crash_between_upload_and_registration_registers_once(
    cli: Cli, sc: FakeSciCat, tmp_path: Path
) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 5)
    block_route = route(sc, "POST", "datasets", "{pid}", "origdatablocks")
    original = block_route.handler
    stored = threading.Event()

    def store_then_hang(ctx: _Ctx) -> tuple[int, Any]:
        answer = original(ctx)
        stored.set()
        time.sleep(5)  # the uploader is killed while it waits for this answer
        return answer  # type: ignore[no-any-return]

    block_route.handler = store_then_hang
    proc = cli.popen("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    try:
        assert stored.wait(60), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        ensure_stopped(proc)
    block_route.handler = original
    assert cli.status()["datasets"][0]["files"]["done"] == 0
    posts = len(sc.requests_for("POST", "/origdatablocks"))
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 0, (r.out, r.err)
    assert len(sc.requests_for("POST", "/origdatablocks")) == posts  # found, not sent again
    assert listed(sc, only_dataset(sc)["pid"]) == expected(src)
    assert cli.status()["datasets"][0]["files"]["done"] == 5


@posix_signals
def test_login_expires_mid_sync_registrations_queue_then_flush(
    cli: Cli, sc: FakeSciCat, tmp_path: Path
) -> None:
    configure(cli, sc, 'expiry_warning = "2h"', 'register_retry = "0.5s"')
    login(cli)
    src = tmp_path / "src"
    src.mkdir()
    make_files(src, 2, "early")
    proc = cli.popen("-v", "sync", str(src), "--dataset", "d", "--investigation", "p1234", "--settle", "0.3")

    def by_state() -> dict[str, int]:
        assert proc.poll() is None, proc.communicate()
        sets = cli.status()["datasets"]
        return dict(sets[0]["files"]["by_state"]) if sets else {}

    try:
        wait_for(lambda: by_state().get("registered") == 2, 30, "the first files to be registered")
        sc.revoke_all_tokens()  # the session ends on the server (as when the token's hour is over)
        make_files(src, 3, "late")
        wait_for(lambda: by_state().get("verified") == 3, 30, "the late files to be uploaded")
        time.sleep(1.5)
        assert by_state() == {"registered": 2, "verified": 3}  # queued, not lost, not failed
        login(cli)  # in another shell: the running sync picks the new token up
        wait_for(lambda: by_state().get("registered") == 5, 30, "the queued registrations to flush")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        ensure_stopped(proc)
    assert proc.returncode == 0, (out, err)
    assert "expires in" in err  # warned before the login ran out
    assert "registration postponed" in err and "logged in again" in err
    assert listed(sc, only_dataset(sc)["pid"]) == expected(src)


def test_a_login_about_to_expire_is_warned_as_soon_as_a_run_starts(
    cli: Cli, sc: FakeSciCat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run looks at its login when it starts, not one check interval later (the sync above, on a fast machine,
    had its token revoked and found dead before the first interval was over, and never warned)."""
    src = logged_in_with_files(cli, sc, tmp_path, 2)
    configure(cli, sc, 'expiry_warning = "2h"')
    monkeypatch.setattr(engine.core, "LOGIN_CHECK", 3600.0)  # only the run's own look can warn in this test
    warned: list[Event] = []
    arrived = threading.Event()

    def on_event(event: Event) -> None:
        warned.append(event)
        arrived.set()

    with Engine(cli.home) as e:
        e.subscribe(on_event, (LoginExpiring,))
        handle = e.upload(DatasetSpec(paths=(str(src),), name="d", investigation="p1234"))
        assert arrived.wait(10), "no warning that the login expires"
        report = handle.wait(60)
    assert report is not None and report.exit_code == 0
    assert len(warned) == 1 and isinstance(warned[0], LoginExpiring) and warned[0].user == "alice"


def test_batch_ending_logged_out_exits_1_and_says_log_in(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 3)
    block_route = route(sc, "POST", "datasets", "{pid}", "origdatablocks")
    original = block_route.handler

    def expired(ctx: _Ctx) -> tuple[int, Any]:
        sc.revoke_all_tokens()
        raise ApiError(401)

    block_route.handler = expired
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 1, (r.out, r.err)
    assert "run `datauploader login`, then the same command again" in r.out
    assert cli.status()["datasets"][0]["files"]["by_state"] == {"verified": 3}
    block_route.handler = original
    login(cli)
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 0 and "0 uploaded now" in r.out, (r.out, r.err)
    assert listed(sc, only_dataset(sc)["pid"]) == expected(src)


# ------------------------------------------------------------------------------------------------ config


def test_scicat_config_errors(cli: Cli, sc: FakeSciCat) -> None:
    configure(cli, sc, 'colour = "blue"')
    r = cli("whoami")
    assert r.code == 2 and "profiles.default.scicat.colour" in r.err
    cli.write_config(f'[profiles.default]\nstorage = {json.dumps(str(cli.storage))}\ncatalogue = "scicat"\n')
    r = cli("login", "--username", "a", "--password-stdin")
    assert r.code == 2 and "[profiles.default.scicat]" in r.err
    configure(cli, sc, 'api = "v5"')
    assert cli("whoami").code == 2
    configure(cli, sc, "block_files = 20000")
    assert "block_files" in cli("whoami").err
