"""Unattended sync on a headless acquisition PC: a systemd user unit running ``datauploader sync …``.

A user unit (not a system one) runs as the scientist's account, with its home, config and login token, needs no
root to install, and is restarted by systemd after a crash; ``loginctl enable-linger`` lets it run with nobody
logged in. systemd stops it with SIGTERM, which ``sync`` treats like Ctrl-C: finish the files in flight, verify,
register, seal, exit 0 — so ``KillMode=mixed`` (SIGTERM to the main process only; rclone is ours to stop) and a
stop timeout long enough to finish a file. On Windows the equivalent is a Task Scheduler task "at log on"
(:func:`task_scheduler_command`, documented in build/README.md); it is printed, not created, because ending a
task there kills the process without a graceful stop and the facility's IT usually owns scheduled tasks.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UsageError
from engine.home import HOME_ENV

log = logging.getLogger(__name__)

UNIT_PREFIX = "datauploader-sync-"
# Seconds systemd waits for the graceful stop before SIGKILL (the journal stays consistent either way).
STOP_TIMEOUT = 300
RESTART_SEC = 30

Systemctl = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


@dataclass
class ServiceSpec:
    """One unattended sync: the dataset and the arguments ``datauploader sync`` gets (paths, options)."""

    dataset: str
    sync_args: tuple[str, ...]
    home: str | None = None  # DATAUPLOADER_HOME for the service, when the user runs with one
    environment: dict[str, str] = field(default_factory=dict)


def datauploader_command() -> list[str]:
    """How to run this installation's CLI from a unit: the frozen executable, else this interpreter."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "engine"]


def unit_name(dataset: str) -> str:
    """``datauploader-sync-<dataset>.service``; characters a unit name cannot hold become ``-`` plus a hash."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset).strip("-.") or "dataset"
    if slug != dataset:
        slug = f"{slug[:60]}-{hashlib.sha256(dataset.encode()).hexdigest()[:8]}"
    return f"{UNIT_PREFIX}{slug}.service"


def systemd_quote(arg: str) -> str:
    """One ``ExecStart=`` word: double-quoted with C escapes when needed; ``%`` and ``$`` escaped always,
    since systemd would otherwise expand specifiers and environment variables inside the user's paths."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if text and re.fullmatch(r"[A-Za-z0-9_@%+=:,./$-]+", text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _env_line(key: str, value: str) -> str:
    return "Environment=" + systemd_quote(f"{key}={value}")


def unit_text(spec: ServiceSpec, command: Sequence[str] | None = None) -> str:
    argv = [*(command or datauploader_command()), "sync", *spec.sync_args]
    env = dict(spec.environment)
    if spec.home:
        env[HOME_ENV] = spec.home
    lines = [
        "# Written by `datauploader service install`; remove with `datauploader service uninstall`.",
        "[Unit]",
        f"Description=DataUploader sync of dataset {spec.dataset}",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(systemd_quote(a) for a in argv),
        *(_env_line(k, v) for k, v in sorted(env.items())),
        "KillMode=mixed",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={STOP_TIMEOUT}",
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        # Exit 2 is a usage/configuration error: restarting cannot fix it.
        "RestartPreventExitStatus=2",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def user_unit_dir() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "systemd" / "user"


def _systemctl(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemctl", "--user", *args], capture_output=True, text=True, timeout=60, check=False
    )


@dataclass
class InstallResult:
    unit: Path
    started: bool
    problem: str | None = None  # why systemctl did not take it, when it did not


def install(
    spec: ServiceSpec,
    *,
    start: bool = True,
    unit_dir: Path | None = None,
    systemctl: Systemctl = _systemctl,
    command: Sequence[str] | None = None,
) -> InstallResult:
    """Write the unit, then (``start``) ``daemon-reload`` and ``enable --now`` it in the user's manager."""
    if not spec.sync_args:
        raise UsageError("service install needs the folders to sync")
    unit = (unit_dir or user_unit_dir()) / unit_name(spec.dataset)
    unit.parent.mkdir(parents=True, exist_ok=True)
    tmp = unit.with_suffix(".tmp")
    tmp.write_text(unit_text(spec, command), encoding="utf-8")
    os.replace(tmp, unit)
    log.info("service: wrote %s", unit)
    if not start:
        return InstallResult(unit, False)
    for args in (["daemon-reload"], ["enable", "--now", unit.name]):
        try:
            done = systemctl(args)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return InstallResult(unit, False, f"systemctl --user {' '.join(args)}: {exc}")
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            return InstallResult(unit, False, f"systemctl --user {' '.join(args)}: {why[-1] if why else '?'}")
    return InstallResult(unit, True)


def uninstall(
    dataset: str, *, unit_dir: Path | None = None, systemctl: Systemctl = _systemctl
) -> Path | None:
    """Stop (gracefully, through systemd's SIGTERM), disable and remove the unit; None when there was none."""
    unit = (unit_dir or user_unit_dir()) / unit_name(dataset)
    if not unit.exists():
        return None
    try:
        systemctl(["disable", "--now", unit.name])
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("service: could not stop %s: %s", unit.name, exc)
    unit.unlink()
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        systemctl(["daemon-reload"])
    log.info("service: removed %s", unit)
    return unit


def installed(unit_dir: Path | None = None) -> list[Path]:
    """The units ``service install`` wrote."""
    folder = unit_dir or user_unit_dir()
    return sorted(folder.glob(f"{UNIT_PREFIX}*.service")) if folder.is_dir() else []


def task_scheduler_command(spec: ServiceSpec, command: Sequence[str] | None = None) -> list[str]:
    """The ``schtasks`` command that makes the Windows equivalent: the sync starts at the user's log-on.

    ``DATAUPLOADER_HOME`` cannot be set per task; with a custom home, set it as a user environment variable.
    """
    argv = [*(command or datauploader_command()), "sync", *spec.sync_args]
    return [
        "schtasks", "/Create", "/F", "/SC", "ONLOGON", "/RL", "LIMITED",
        "/TN", f"DataUploader\\sync {spec.dataset}",
        "/TR", subprocess.list2cmdline(argv),
    ]  # fmt: skip
