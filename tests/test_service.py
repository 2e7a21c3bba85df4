"""Service mode: the systemd user unit `datauploader service install` writes, and the stop systemd performs
(SIGTERM to the main process only, KillMode=mixed) ending a real sync cleanly with exit 0."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from engine import service
from engine.service import ServiceSpec, install, systemd_quote, uninstall, unit_name, unit_text
from tests.conftest import REPO, Cli, assert_uploaded, ensure_stopped, wait_for, write_tree


def _exec_start(unit: str) -> list[str]:
    """ExecStart= split the way systemd does for the quoting unit_text uses."""
    line = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    return shlex.split(line[len("ExecStart=") :].replace("$$", "$").replace("%%", "%"))


def _environment(unit: str) -> dict[str, str]:
    env = {}
    for line in unit.splitlines():
        if line.startswith("Environment="):
            key, _, value = shlex.split(line[len("Environment=") :])[0].partition("=")
            env[key] = value
    return env


class FakeSystemctl:
    def __init__(self, fail: Sequence[str] = ()) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        if args[0] in self.fail:
            return subprocess.CompletedProcess(args, 1, "", "Failed to connect to bus: No medium found\n")
        return subprocess.CompletedProcess(args, 0, "", "")


def test_unit_runs_sync_and_stops_gracefully() -> None:
    spec = ServiceSpec("scan 1", ("/data/beam line", "--dataset", "scan 1", "--settle", "2"), home="/srv/du")
    text = unit_text(spec, ["/opt/du/datauploader"])
    assert _exec_start(text) == ["/opt/du/datauploader", "sync", "/data/beam line", "--dataset", "scan 1",
                                 "--settle", "2"]  # fmt: skip
    assert _environment(text) == {"DATAUPLOADER_HOME": "/srv/du"}
    for line in ("KillMode=mixed", "KillSignal=SIGTERM", "Restart=on-failure", "RestartPreventExitStatus=2",
                 "WantedBy=default.target"):  # fmt: skip
        assert line in text.splitlines()


@pytest.mark.parametrize("arg", ["/data/100%", "/data/$HOME", 'a "b" c', "back\\slash", "plain-path_1.h5"])
def test_exec_quoting_survives_specifiers_and_variables(arg: str) -> None:
    text = unit_text(ServiceSpec("d", (arg,)), ["/x/du"])
    assert _exec_start(text) == ["/x/du", "sync", arg]
    assert systemd_quote("/a/b") == "/a/b"


def test_unit_name_is_safe_and_distinct() -> None:
    assert unit_name("scan-001") == "datauploader-sync-scan-001.service"
    odd = unit_name("scan 1/ä")
    assert odd.startswith("datauploader-sync-scan-1-") and odd.endswith(".service")
    assert unit_name("scan 1/ä") != unit_name("scan 1/ö")


def test_install_enables_and_uninstall_removes(tmp_path: Path) -> None:
    ctl = FakeSystemctl()
    spec = ServiceSpec("d1", ("/data", "--dataset", "d1"))
    result = install(spec, unit_dir=tmp_path, systemctl=ctl)
    assert result.started and result.unit == tmp_path / "datauploader-sync-d1.service"
    assert ctl.calls == [["daemon-reload"], ["enable", "--now", "datauploader-sync-d1.service"]]
    assert service.installed(tmp_path) == [result.unit]
    ctl.calls.clear()
    assert uninstall("d1", unit_dir=tmp_path, systemctl=ctl) == result.unit
    assert ctl.calls == [["disable", "--now", "datauploader-sync-d1.service"], ["daemon-reload"]]
    assert not result.unit.exists() and uninstall("d1", unit_dir=tmp_path, systemctl=ctl) is None


def test_install_without_a_user_manager_says_how_to_start_it(tmp_path: Path) -> None:
    result = install(
        ServiceSpec("d", ("/x",)), unit_dir=tmp_path, systemctl=FakeSystemctl(fail=["daemon-reload"])
    )
    assert not result.started and result.unit.is_file()
    assert result.problem == "systemctl --user daemon-reload: Failed to connect to bus: No medium found"


def test_task_scheduler_equivalent() -> None:
    cmd = service.task_scheduler_command(
        ServiceSpec("d", ("C:\\data\\run 1", "--dataset", "d")), ["C:\\du\\du.exe"]
    )
    assert cmd[:7] == ["schtasks", "/Create", "/F", "/SC", "ONLOGON", "/RL", "LIMITED"]
    assert cmd[-1] == 'C:\\du\\du.exe sync "C:\\data\\run 1" --dataset d'


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.posix_only(reason="systemd is Linux only")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    spec = ServiceSpec("d", (str(tmp_path), "--dataset", "d"), home=str(tmp_path / "home"))
    unit = install(spec, unit_dir=tmp_path / "units", start=False).unit
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines() if unit.name in ln]
    assert not problems, r.stdout + r.stderr


def test_cli_service_show_and_install(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    src = tmp_path / "src"
    src.mkdir()
    r = cli("service", "show", str(src), "--dataset", "d", "--settle", "1", "--meta", "a=b")
    assert r.code == 0, r
    if sys.platform == "win32":
        assert r.out.startswith("schtasks /Create")
        return
    argv = _exec_start(r.out)
    assert argv[1:] == ["-m", "engine", "sync", str(src), "--dataset", "d", "--settle", "1", "--meta", "a=b"]
    assert _environment(r.out) == {"DATAUPLOADER_HOME": str(cli.home)}
    r = cli("service", "install", str(src), "--dataset", "d", "--no-start")
    assert r.code == 0, r
    assert (tmp_path / "xdg" / "systemd" / "user" / "datauploader-sync-d.service").is_file()
    assert cli("service", "list").out.strip().endswith("datauploader-sync-d.service")


@pytest.mark.posix_only(reason="systemd's stop is SIGTERM to one process; Windows has no such signal")
def test_sigterm_as_systemd_sends_it_ends_the_sync_cleanly(cli: Cli, tmp_path: Path) -> None:
    """What `systemctl --user stop` does to the unit: SIGTERM to the main process (KillMode=mixed) -> the sync
    finishes what is in flight, seals the dataset and exits 0, leaving no rclone behind. Runs the unit's own
    ExecStart and Environment (no user service manager is available on the CI machine)."""
    src = write_tree(tmp_path / "src", {f"f{i}.dat": bytes([i]) * 50_000 for i in range(20)})
    unit = unit_text(
        ServiceSpec("svc", (str(src), "--dataset", "svc", "--settle", "0.3"), home=str(cli.home))
    )
    env = {**cli.env, **_environment(unit)}
    proc = subprocess.Popen(_exec_start(unit), env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:

        def caught_up() -> bool:
            assert proc.poll() is None, proc.communicate()
            sets = cli.status()["datasets"]
            return bool(sets) and sets[0]["files"]["done"] == 20

        wait_for(caught_up, 60, "the sync to upload the existing files")
        (src / "late.dat").write_bytes(b"x" * 1000)  # written just before the stop: finished, not lost
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        ensure_stopped(proc)
    assert proc.returncode == 0, (out, err)
    d = cli.status()["datasets"][0]
    assert d["state"] == "complete", d
    done = d["files"]["done"]
    assert done in (20, 21)  # late.dat is sealed in if it settled before the stop, else left for the next run
    if done == 21:
        assert_uploaded(cli.storage / "svc", src)
    assert not list((cli.home / "run").glob("rcd-*.pid"))
