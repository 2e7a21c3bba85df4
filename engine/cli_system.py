"""``datauploader autostart …`` and ``datauploader service …``: how the app fits into the user's system.

Kept apart from :mod:`engine.cli` so the upload/sync front end and these install-time switches evolve
separately: :func:`add_parsers` adds the sub-commands and :data:`COMMANDS` maps them to their handlers. They
change files of the user's desktop and service manager only; the engine they are handed is not used.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a command runs, so `datauploader --help` / `--version` stay instant
    from engine import Engine, ServiceSpec


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    au = sub.add_parser("autostart", help="start the tray at login: on, off or status")
    au.add_argument("state", choices=["on", "off", "status"], help="switch it on or off, or show it")

    # One flat parser (action, then the sync arguments): the CLI checks options per sub-command.
    sv = sub.add_parser(
        "service",
        help="run a sync unattended (systemd user unit; Task Scheduler on Windows)",
        description="install: write and start a systemd user unit running `datauploader sync PATH... --dataset "
        "NAME [options]`; show: print it (on Windows: the schtasks command) without installing; uninstall "
        "--dataset NAME: stop it gracefully and remove it; list: the installed units.",
    )
    sv.add_argument("action", choices=["install", "show", "uninstall", "list"], metavar="ACTION")
    sv.add_argument("paths", nargs="*", metavar="PATH", help="folders to sync (install, show)")
    sv.add_argument("--dataset", metavar="NAME", help="dataset name")
    sv.add_argument("--investigation", metavar="ID")
    sv.add_argument("--description", metavar="TEXT")
    sv.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    sv.add_argument("--profile", metavar="NAME")
    sv.add_argument("--bwlimit", metavar="RATE")
    sv.add_argument("--transfers", metavar="N")
    sv.add_argument("--settle", metavar="SECONDS")
    sv.add_argument("--no-start", action="store_true", help="install: write the unit but do not start it")


def cmd_autostart(engine: Engine, args: argparse.Namespace) -> int:
    from engine import autostart_off, autostart_on, autostart_status

    if args.state == "on":
        st = autostart_on()
    elif args.state == "off":
        st = autostart_off()
    else:
        st = autostart_status()
    print(f"start at login: {'on' if st.enabled else 'off'} ({st.where})")
    if st.enabled and st.command:
        print(f"runs: {st.command}")
    return 0


def _spec(args: argparse.Namespace) -> ServiceSpec:
    from engine import HOME_ENV, ServiceSpec, UsageError

    if not args.paths or not args.dataset:
        raise UsageError(f"service {args.action} needs the folders to sync and --dataset NAME")
    sync_args = [os.path.abspath(p) for p in args.paths]
    sync_args += ["--dataset", args.dataset]
    for opt in ("investigation", "description", "profile", "bwlimit", "transfers", "settle"):
        value = getattr(args, opt)
        if value is not None:
            sync_args += [f"--{opt}", str(value)]
    for kv in args.meta:
        sync_args += ["--meta", kv]
    home = os.environ.get(HOME_ENV)
    return ServiceSpec(
        dataset=args.dataset, sync_args=tuple(sync_args), home=os.path.abspath(home) if home else None
    )


def _service_show(args: argparse.Namespace) -> int:
    from engine import service_unit, task_scheduler_command

    spec = _spec(args)
    if sys.platform == "win32":
        print(subprocess.list2cmdline(task_scheduler_command(spec)))
    else:
        sys.stdout.write(service_unit(spec))
    return 0


def _service_install(args: argparse.Namespace) -> int:
    from engine import service_install, task_scheduler_command

    spec = _spec(args)
    if sys.platform == "win32":
        print("On Windows, run this once (a Task Scheduler task that starts the sync when you log on):")
        print(subprocess.list2cmdline(task_scheduler_command(spec)))
        return 0
    result = service_install(spec, start=not args.no_start)
    print(f"wrote {result.unit}")
    if result.started:
        print(f"started; follow it with: journalctl --user -u {result.unit.name} -f")
        print(f"to keep it running while you are logged out: loginctl enable-linger {_user()}")
        return 0
    if result.problem:
        print(f"datauploader: error: not started: {result.problem}", file=sys.stderr)
        print(
            f"start it in your session with: systemctl --user enable --now {result.unit.name}",
            file=sys.stderr,
        )
        return 1
    return 0


def _service_uninstall(args: argparse.Namespace) -> int:
    from engine import UsageError, service_uninstall

    if not args.dataset:
        raise UsageError("service uninstall needs --dataset NAME")
    unit = service_uninstall(args.dataset)
    if unit is None:
        print(f"no service for dataset '{args.dataset}'")
        return 1
    print(f"stopped and removed {unit}")
    return 0


def _service_list(args: argparse.Namespace) -> int:
    from engine import services_installed

    units = services_installed()
    if not units:
        print("no services installed")
    for unit in units:
        print(unit)
    return 0


_SERVICE: dict[str, Callable[[argparse.Namespace], int]] = {
    "install": _service_install,
    "show": _service_show,
    "uninstall": _service_uninstall,
    "list": _service_list,
}


def cmd_service(engine: Engine, args: argparse.Namespace) -> int:
    return _SERVICE[args.action](args)


COMMANDS: dict[str, Callable[[Engine, argparse.Namespace], int]] = {
    "autostart": cmd_autostart,
    "service": cmd_service,
}


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (OSError, KeyError):
        return "$USER"
