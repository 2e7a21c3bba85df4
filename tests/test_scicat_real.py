"""SciCat as the real server (backend-next 4055c96) behaves: one test per finding of issue 10, against the fake
that now has the real server's quirks, through the CLI where a user would see the difference.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "scicat_sdk_py", reason="fake SciCat needs scicat-sdk-py (pip install scicat-sdk-py==5.1.1)"
)

from engine.catalogue import AuthError, Credentials, DatasetSpec, FileEntry, NotACatalogue, TransientError
from engine.catalogue.scicat import SciCatCatalogue, storage_path
from engine.catalogue.scicat import api as scicat_api
from engine.config import SciCatSettings
from engine.credentials import STORE_ENV, TokenStore
from engine.storage import join_fs
from tests.conftest import Cli, ensure_stopped, posix_signals, tree_bytes, wait_for, write_tree
from tests.fake_scicat import ApiError, FakeSciCat, FakeUser, Problem, _Ctx, _obsolete_400
from tests.test_scicat import (
    configure,
    expected,
    listed,
    logged_in_with_files,
    login,
    make_files,
    only_dataset,
    route,
    run_input,
)

USERS = [
    FakeUser("alice", "secret", "alice@example.org", ("p1234", "staff")),
    FakeUser("ingestor", "ingest", "ingestor@facility.org", ("ingestor",), strategies=("local",)),
    FakeUser("admin", "admin", "admin@facility.org", ("admin",), strategies=("local",)),
]


@pytest.fixture(autouse=True)
def _file_token_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_ENV, "file")


@pytest.fixture
def sc() -> Iterator[FakeSciCat]:
    # The facility of the issue: ADMIN_GROUPS=admin,ingestor; PROPOSAL_GROUPS=proposalingestor;
    # UPDATE_DATASET_LIFECYCLE_GROUPS=archivemanager.
    with FakeSciCat(USERS, admin_groups=("admin", "ingestor")) as fake:
        fake.add_proposal("p1234", "p1234", title="Alice's beamtime", pi_email="pi@example.org")
        fake.add_proposal("2024-001", "p1234", title="A date-like proposal id", pi_email="pi@example.org")
        fake.add_proposal("p9999", "p9999", title="Bob's beamtime")
        yield fake


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def totals(sc: FakeSciCat, pid: str) -> tuple[int, int]:
    ds = sc.datasets[pid]
    return ds["numberOfFiles"], ds["size"]


def true_totals(src: Path) -> tuple[int, int]:
    files = tree_bytes(src)
    return len(files), sum(len(b) for b in files.values())


def lost_answer_on(sc: FakeSciCat, which: int, *segments: str) -> list[int]:
    """The ``which``-th call of a route is stored and then answered 500 (a proxy timeout): its outcome is
    unknown to the client."""
    r = route(sc, "POST", *segments)
    original = r.handler
    calls: list[int] = []

    def handler(ctx: _Ctx) -> tuple[int, Any]:
        answer = original(ctx)
        calls.append(answer[0])
        if len(calls) == which:
            raise RuntimeError("proxy timeout after the block was stored")
        return answer  # type: ignore[no-any-return]

    r.handler = handler
    return calls


# ---------------------------------------------------------------------- 1. more than 100 origdatablocks


def test_1_more_than_100_blocks_a_lost_answer_is_not_registered_twice(
    cli: Cli, sc: FakeSciCat, tmp_path: Path
) -> None:
    configure(cli, sc, "block_files = 1")  # one block per file, as sync mode writes them
    login(cli)
    src = tmp_path / "src"
    write_tree(src, {f"f{i:03d}.bin": os.urandom(50 + i) for i in range(105)})
    lost_answer_on(sc, 104, "datasets", "{pid}", "origdatablocks")
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 0, (r.out, r.err)
    pid = only_dataset(sc)["pid"]
    assert listed(sc, pid) == expected(src)  # the 104th block was found beyond the first 100
    assert len(sc.blocks_of(pid)) == 105 and totals(sc, pid) == true_totals(src)


# ---------------------------------------------------------------------- 2. date-like names and ids


def test_2_date_like_names_are_found_again_after_a_lost_journal(
    cli: Cli, sc: FakeSciCat, tmp_path: Path
) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 3)
    args = ("upload", str(src), "--dataset", "scan-001", "--investigation", "2024-001")
    assert cli(*args).code == 0
    (cli.home / "journal.sqlite").unlink()  # a lost journal (or a crash between create and the journal write)
    r = cli(*args)
    assert r.code == 0, (r.out, r.err)  # the manifest it wrote before is recognised as its own
    ds = only_dataset(sc)
    assert ds["datasetName"] == "scan-001" and ds["proposalId"] == "2024-001"
    assert listed(sc, ds["pid"]) == expected(src)


# ---------------------------------------------------------------------- 3. changed files


def test_3_a_changed_file_replaces_its_entry_and_the_totals_stay_right(
    cli: Cli, sc: FakeSciCat, tmp_path: Path
) -> None:
    configure(cli, sc, "block_files = 4")
    login(cli)
    src = tmp_path / "src"
    make_files(src, 10)
    args = ("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert cli(*args).code == 0
    (src / "frame_01.bin").write_bytes(b"appended by the acquisition software" * 10)
    (src / "sub/frame_06.bin").write_bytes(b"x")
    assert cli(*args).code == 0
    pid = only_dataset(sc)["pid"]
    assert listed(sc, pid) == expected(src)  # one entry per path, the current checksum
    assert totals(sc, pid) == true_totals(src)
    assert len(sc.blocks_of(pid)) == 3  # replaced inside their blocks


# ---------------------------------------------------------------------- 4. anonymous tokens


def test_4_a_revoked_login_says_log_in_again(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 3)
    block_route = route(sc, "POST", "datasets", "{pid}", "origdatablocks")
    original = block_route.handler

    def revoked(ctx: _Ctx) -> tuple[int, Any]:
        sc.revoke_all_tokens()  # the server's secret changed: from now on the token is anonymous
        raise ApiError(403, "Forbidden resource")  # what an anonymous write gets

    block_route.handler = revoked
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 1, (r.out, r.err)
    assert "log in again" in r.out + r.err and "run `datauploader login`" in r.out, (r.out, r.err)
    assert "not permitted" not in r.out + r.err
    block_route.handler = original
    login(cli)
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 0, (r.out, r.err)
    assert listed(sc, only_dataset(sc)["pid"]) == expected(src)


def test_4_a_running_process_picks_up_a_login_from_another_shell(sc: FakeSciCat, tmp_path: Path) -> None:
    settings = SciCatSettings(url=sc.url)
    running = SciCatCatalogue(settings, TokenStore(tmp_path), "default")
    running.login(Credentials(username="alice", password="secret"))
    spec = DatasetSpec(
        name="d", investigation="p1234", location="/s/p1234/d", created=1.7e9, target="p1234/d"
    )
    pid = running.create_dataset(spec)
    sc.revoke_all_tokens()
    with pytest.raises(AuthError, match="log in again"):
        running.append_files(pid, [FileEntry("a", 1, 1.7e9, "aa" * 32)])
    other_shell = SciCatCatalogue(settings, TokenStore(tmp_path), "default")
    other_shell.login(Credentials(username="alice", password="secret"))
    running.append_files(pid, [FileEntry("a", 1, 1.7e9, "aa" * 32)])  # no restart needed
    assert [f["path"] for b in sc.blocks_of(pid) for f in b["dataFileList"]] == ["a"]


# ---------------------------------------------------------------------- 5. investigations of admins


def test_5_admin_and_functional_accounts_see_every_investigation(cli: Cli, sc: FakeSciCat) -> None:
    configure(cli, sc)
    for user, password in (("admin", "admin"), ("ingestor", "ingest")):
        login(cli, user, password)
        r = cli("investigations", "--json")
        assert r.code == 0, r.err
        assert [i["id"] for i in json.loads(r.out)] == ["2024-001", "p1234", "p9999"]
    login(cli)
    assert [i["id"] for i in json.loads(cli("investigations", "--json").out)] == ["2024-001", "p1234"]


# ---------------------------------------------------------------------- 6. curators' edits


def test_6_re_runs_keep_what_curators_edited(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 3)
    args = ("upload", str(src), "--dataset", "d", "--investigation", "p1234", "--description", "first")
    assert cli(*args, "--meta", "sample=LaB6").code == 0
    pid = only_dataset(sc)["pid"]
    curated = {
        **sc.datasets[pid]["scientificMetadata"],
        "curator_note": "checked by M.",
        "sample": "LaB6 (NIST)",
    }
    sc.edit_dataset(pid, scientificMetadata=curated, description="curated description")
    end_time = sc.datasets[pid]["endTime"]
    sc.clear_requests()
    # the same command again: nothing is written
    assert cli(*args, "--meta", "sample=LaB6").code == 0
    assert not sc.requests_for("PATCH") and not sc.requests_for("POST", "/origdatablocks")
    assert sc.datasets[pid]["scientificMetadata"] == curated and sc.datasets[pid]["endTime"] == end_time
    # a new key: merged in, the rest stays as the curator left it
    assert cli(*args, "--meta", "sample=LaB6", "--meta", "temperature=300").code == 0
    ds = sc.datasets[pid]
    assert ds["scientificMetadata"] == {**curated, "temperature": 300}
    assert ds["description"] == "curated description" and ds["endTime"] == end_time
    # a value the user changes is written
    assert cli(*args, "--meta", "sample=CeO2").code == 0
    assert sc.datasets[pid]["scientificMetadata"]["sample"] == "CeO2"
    assert sc.datasets[pid]["scientificMetadata"]["curator_note"] == "checked by M."


# ---------------------------------------------------------------------- 7. SciCat's reasons


def test_7_scicat_reasons_are_shown_as_readable_lines(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 2)
    valid = route(sc, "POST", "datasets", "isValid")
    original = valid.handler
    valid.handler = lambda ctx: (
        200,
        {"valid": False, "error": "sampleId must be a registered sample; creationLocation must be longer"},
    )
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 2 and "\n  - sampleId must be a registered sample\n" in r.err, r.err
    assert "no reason given" not in r.err
    valid.handler = original

    def refuse(ctx: _Ctx) -> tuple[int, Any]:
        raise _obsolete_400(
            [
                Problem(("contactEmail",), "isEmail", "contactEmail must be an email"),
                Problem(("techniques", "0", "name"), "isString", "name must be a string"),
            ]
        )

    route(sc, "POST", "datasets").handler = refuse
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 2, r.err
    assert (
        "\n  - contactEmail must be an email" in r.err and "\n  - techniques.0.name must be a string" in r.err
    )
    assert '"property"' not in r.err and "[{" not in r.err


# ---------------------------------------------------------------------- 8. api = "v4"


def test_8_v4_totals_stay_true(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    configure(cli, sc, 'api = "v4"\nblock_files = 1')
    login(cli)
    src = tmp_path / "src"
    make_files(src, 13)
    args = ("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    r = cli(*args)
    assert r.code == 0, (r.out, r.err)
    pid = only_dataset(sc)["pid"]
    assert sc.dataset(pid)["version"] == "v4"
    assert listed(sc, pid) == expected(src) and totals(sc, pid) == true_totals(src)
    (src / "frame_03.bin").write_bytes(b"longer than before, longer than before" * 50)
    assert cli(*args, "--description", "changed").code == 0  # a block PATCH and a dataset PATCH
    assert listed(sc, pid) == expected(src) and totals(sc, pid) == true_totals(src)


# ---------------------------------------------------------------------- 9. lifecycle, privileged creators


def test_9_finalise_leaves_the_lifecycle_to_archive_managers(
    cli: Cli, sc: FakeSciCat, tmp_path: Path
) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 3)
    args = ("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert cli(*args).code == 0
    pid = only_dataset(sc)["pid"]
    lifecycle = {**sc.datasets[pid]["datasetlifecycle"], "archivable": False}  # an archive manager decided
    sc.edit_dataset(pid, datasetlifecycle=lifecycle)
    (src / "frame_01.bin").write_bytes(b"new")
    assert cli(*args).code == 0
    assert sc.datasets[pid]["datasetlifecycle"] == lifecycle
    assert not any("datasetlifecycle" in (q.body or {}) for q in sc.requests_for("PATCH"))


def test_9_a_privileged_creator_completes_without_update_rights(
    cli: Cli, sc: FakeSciCat, tmp_path: Path
) -> None:
    # CREATE_DATASET_PRIVILEGED_GROUPS=ingestors (not an admin): creates for any group, updates only its own.
    sc.privileged_groups = {"ingestors"}
    sc.add_user(
        FakeUser(
            "ingest2", "pw", "ingest2@facility.org", ("ingestors",), ingestor=True, strategies=("local",)
        )
    )
    configure(cli, sc)
    login(cli, "ingest2", "pw")
    src = tmp_path / "src"
    make_files(src, 3)
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234")
    assert r.code == 0, (r.out, r.err)
    assert "ro-crate-metadata.json" not in r.out and "may not" not in r.out
    ds = only_dataset(sc)
    assert ds["ownerGroup"] == "p1234" and listed(sc, ds["pid"]) == expected(src)
    assert "does not let this account update" in r.err  # said once, not blamed on the manifest
    assert cli("upload", str(src), "--dataset", "d", "--investigation", "p1234").code == 0


# ---------------------------------------------------------------------- 10. sourceFolder


def test_10_source_folder_is_a_path_never_a_connection_string(
    cli: Cli, sc: FakeSciCat, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    storage = json.dumps(f":local,no_preallocate=true:{store}")  # a TOML string: Windows paths escaped
    cli.write_config(
        f'[profiles.default]\nstorage = {storage}\ncatalogue = "scicat"\n'
        f'[profiles.default.scicat]\nurl = "{sc.url}"\n'
    )
    login(cli)
    src = tmp_path / "src"
    make_files(src, 2)
    assert cli("upload", str(src), "--dataset", "d", "--investigation", "p1234").code == 0
    assert only_dataset(sc)["sourceFolder"] == str(store / "p1234" / "d")
    configure(cli, sc, 'source_folder = "/gpfs/raw/{investigation}/{dataset}"\nowner_group = "p1234"')
    assert cli("upload", str(src), "--dataset", "e", "--investigation", "p1234").code == 0
    r = cli("upload", str(src), "--dataset", "f", "--pi", "pi@example.org")
    assert r.code == 0, r.err  # no investigation: no empty folder level
    configure(cli, sc, 'source_folder = "/archive/root"')  # no placeholders: the root, as before
    assert cli("upload", str(src), "--dataset", "g", "--investigation", "p1234").code == 0
    folders = {d["datasetName"]: d["sourceFolder"] for d in sc.datasets.values()}
    assert folders == {
        "d": str(store / "p1234" / "d"),
        "e": "/gpfs/raw/p1234/e",
        "f": "/gpfs/raw/f",
        "g": "/archive/root/p1234/g",
    }
    # the default for remote storage is the path part only: no remote, no connection parameters, no secrets
    assert (
        storage_path(":webdav,url='http://dav.example.org:8080/x',user=bob,pass=***:raw/p1/d") == "/raw/p1/d"
    )
    assert storage_path("facility,pass=***:bucket/raw/d") == "/bucket/raw/d"
    assert storage_path("C:\\data\\raw") == "C:\\data\\raw"
    # a Windows folder behind a connection string: one kind of separator, no "/" in front
    location = join_fs(":local,no_preallocate=true:C:\\data", "p1", "d")
    assert location == ":local,no_preallocate=true:C:\\data\\p1\\d"
    assert storage_path(location) == "C:\\data\\p1\\d"
    assert join_fs("C:/data", "p1", "d") == "C:/data/p1/d"  # written with slashes: kept so
    configure(cli, sc, 'source_folder = "/raw/{proposal}"')
    r = cli("whoami")
    assert r.code == 2 and "{proposal}" in r.err


# ---------------------------------------------------------------------- 11. PI and proposal title


def test_11_pi_and_title_come_from_the_user_never_from_a_functional_account(
    cli: Cli, sc: FakeSciCat, tmp_path: Path
) -> None:
    configure(cli, sc)
    login(cli, "ingestor", "ingest")
    src = tmp_path / "src"
    make_files(src, 2)
    # the proposal's PI by default
    assert cli("upload", str(src), "--dataset", "a", "--investigation", "p1234").code == 0
    # no investigation and no --pi: SciCat needs a PI, and the functional account is not one
    r = cli("upload", str(src), "--dataset", "c")
    assert r.code == 2 and "--pi" in r.err, (r.out, r.err)
    assert cli("upload", str(src), "--dataset", "c", "--pi", "dave@example.org").code == 0
    # --pi when given
    r = cli("upload", str(src), "--dataset", "b", "--investigation", "p1234", "--pi", "carol@example.org")
    assert r.code == 0, r.err
    # a new proposal gets the title and PI the user gave
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p7777", "--pi", "erin@example.org",
            "--investigation-title", "Erin's beamtime")  # fmt: skip
    assert r.code == 0, (r.out, r.err)
    pis = {d["datasetName"]: d["principalInvestigator"] for d in sc.datasets.values()}
    assert pis == {
        "a": "pi@example.org",
        "b": "carol@example.org",
        "c": "dave@example.org",
        "d": "erin@example.org",
    }
    p = sc.proposals["p7777"]
    assert (p["title"], p["email"], p["pi_email"]) == (
        "Erin's beamtime",
        "erin@example.org",
        "erin@example.org",
    )
    assert "ingestor@facility.org" not in json.dumps(sc.proposals["p7777"])


# ---------------------------------------------------------------------- 12. the smaller ones


def test_12_creation_and_end_time_are_the_data_s(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 3)
    for i, f in enumerate(sorted(p for p in src.rglob("*") if p.is_file())):
        os.utime(f, (1_700_000_000 + i * 60, 1_700_000_000 + i * 60))
    assert cli("upload", str(src), "--dataset", "d", "--investigation", "p1234").code == 0
    ds = only_dataset(sc)
    assert epoch(ds["creationTime"]) == 1_700_000_000  # the oldest file
    assert epoch(ds["endTime"]) == 1_700_000_120  # the newest file


def test_12_meta_values_keep_their_types(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 2)
    meta = ["temperature = 300", "gap=2.5 mm", "count=-1.5e3", 'label="300 K"', "sample=LaB6", "weird=2 3 K"]
    args = [a for m in meta for a in ("--meta", m)]
    r = cli("upload", str(src), "--dataset", "d", "--investigation", "p1234", *args)
    assert r.code == 0, (r.out, r.err)
    sm = only_dataset(sc)["scientificMetadata"]
    assert sm["temperature"] == 300 and sm["count"] == -1500.0 and sm["label"] == "300 K"
    assert sm["sample"] == "LaB6" and sm["weird"] == "2 3 K"
    assert {k: sm["gap"][k] for k in ("value", "unit")} == {"value": 2.5, "unit": "mm"}  # SciCat adds valueSI
    crate = json.loads((cli.storage / "p1234" / "d" / "ro-crate-metadata.json").read_text())
    props = {e["name"]: e for e in crate["@graph"] if e.get("@type") == "PropertyValue"}
    assert (
        props["temperature"]["value"] == 300
        and props["gap"]["value"] == 2.5
        and props["gap"]["unitText"] == "mm"
    )
    assert props["label"]["value"] == "300 K" and "unitText" not in props["label"]


def test_12_the_manifest_is_on_storage_but_not_registered(cli: Cli, sc: FakeSciCat, tmp_path: Path) -> None:
    src = logged_in_with_files(cli, sc, tmp_path, 4)
    assert cli("upload", str(src), "--dataset", "d", "--investigation", "p1234").code == 0
    pid = only_dataset(sc)["pid"]
    assert (cli.storage / "p1234" / "d" / "ro-crate-metadata.json").is_file()
    assert "ro-crate-metadata.json" not in {path for path, _ in listed(sc, pid)}
    assert totals(sc, pid) == true_totals(src)


class _Silent(BaseHTTPRequestHandler):
    """Accepts the connection and never answers."""

    def do_GET(self) -> None:
        time.sleep(30)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _NotSciCat(BaseHTTPRequestHandler):
    """A web server that is not SciCat: HTML 404 everywhere, or a proxy asking for its own login."""

    status = 404

    def _answer(self) -> None:
        body = b"<html><body>Nope</body></html>"
        self.send_response(self.status)
        if self.status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="proxy"')
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/api/v3"


def test_12_login_says_why_before_asking_for_a_password(cli: Cli, tmp_path: Path) -> None:
    def profile(url: str, extra: str = "") -> None:
        cli.write_config(
            f'[profiles.default]\nstorage = {json.dumps(str(cli.storage))}\ncatalogue = "scicat"\n'
            f'[profiles.default.scicat]\nurl = "{url}"\n{extra}\n'
        )

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    profile(f"http://127.0.0.1:{closed}/api/v3")
    r = cli("login", "--username", "alice")  # no --password-stdin and no terminal: would ask first
    assert r.code != 0 and "refused the connection" in r.err, r.err

    silent, url = serve(_Silent)
    try:
        profile(url, "timeout = 1")
        started = time.monotonic()
        r = run_input(cli, "secret\n", "login", "--username", "alice", "--password-stdin")
        assert r.code != 0 and "accepted the connection but did not answer within 1 s" in r.err, r.err
        assert time.monotonic() - started < 20
    finally:
        silent.shutdown()
        silent.server_close()

    for status, words in ((404, "does not answer like a SciCat API"), (401, "asks for a login of its own")):
        _NotSciCat.status = status
        other, url = serve(_NotSciCat)
        try:
            profile(url)
            r = run_input(cli, "secret\n", "login", "--username", "alice", "--password-stdin")
            assert r.code == 2 and words in r.err and "wrong user name or password" not in r.err, r.err
        finally:
            other.shutdown()
            other.server_close()


def test_12_unknown_host_and_connect_timeout_are_told_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def resolve_nothing(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    cat = SciCatCatalogue(SciCatSettings(url="http://scicat.invalid/api/v3"), TokenStore(tmp_path))
    with monkeypatch.context() as m:
        m.setattr(socket, "getaddrinfo", resolve_nothing)
        with pytest.raises(TransientError, match="cannot be resolved"):
            cat.probe()
    # A listening socket whose accept queue is full drops new connection attempts: a connect timeout.
    monkeypatch.setattr(scicat_api, "CONNECT_TIMEOUT", 0.5)
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.2)
        cat = SciCatCatalogue(SciCatSettings(url=f"http://127.0.0.1:{port}/api/v3"), TokenStore(tmp_path))
        with pytest.raises(TransientError, match=r"did not accept a connection within 0\.5 s"):
            cat.probe()
    finally:
        for c in fillers:
            c.close()
        full.close()
    with pytest.raises(NotACatalogue):  # NotACatalogue is a usage error: exit 2
        raise NotACatalogue("x")


# ---------------------------------------------------------------------- acceptance: 300-file sync dataset


@posix_signals
def test_acceptance_sync_dataset_of_300_files_re_uploaded_without_journal(
    cli: Cli, sc: FakeSciCat, tmp_path: Path
) -> None:
    """A sync dataset of 300 files re-uploaded with its journal deleted yields one dataset and 300 entries,
    each with its current checksum."""
    configure(cli, sc, "block_files = 1", 'register_retry = "0.5s"')  # one block per file, as sync writes
    login(cli)
    src = tmp_path / "src"
    write_tree(src, {f"scan/frame_{i:03d}.h5": os.urandom(100 + i) for i in range(300)})
    args = ("sync", str(src), "--dataset", "scan-001", "--investigation", "2024-001", "--settle", "0.2")

    def registered() -> int:
        sets = cli.status()["datasets"]
        return int(sets[0]["files"]["by_state"].get("registered", 0)) if sets else 0

    def run_sync(until: Any) -> None:
        proc = cli.popen(*args)
        try:
            wait_for(lambda: proc.poll() is None and until(), 180, "the sync to register the files")
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, (out, err)
        finally:
            ensure_stopped(proc)

    run_sync(lambda: registered() == 300)
    pid = only_dataset(sc)["pid"]
    # files the instrument rewrote while the first sync ran: their entries are replaced
    for i in (3, 150, 299):
        (src / f"scan/frame_{i:03d}.h5").write_bytes(os.urandom(7 + i))
    run_sync(lambda: registered() == 300 and listed(sc, pid) == expected(src))
    (cli.home / "journal.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (cli.home / f"journal.sqlite{suffix}").unlink(missing_ok=True)
    run_sync(lambda: registered() == 300)
    ds = only_dataset(sc)
    assert ds["pid"] == pid
    entries = listed(sc, pid)
    assert entries == expected(src) and sum(entries.values()) == 300
    assert totals(sc, pid) == true_totals(src)
