"""``datauploader autostart …`` and ``datauploader service …``: how the app fits into the user's system.

Kept apart from :mod:`engine.cli` so the upload/sync front end and these install-time switches evolve
separately; :func:`add_parsers` adds the sub-commands, each carrying its handler as ``args.handler``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable

from engine import autostart, service
from engine.home import HOME_ENV

Handler = Callable[[argparse.Namespace], int]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    au = sub.add_parser("autostart", help="start the tray at login: on, off or status")
    au.add_argument("state", choices=["on", "off", "status"], help="switch it on or off, or show it")
    au.set_defaults(handler=cmd_autostart)

    sv = sub.add_parser(
        "service", help="run a sync unattended (systemd user unit; Task Scheduler on Windows)"
    )
    sv_sub = sv.add_subparsers(dest="service_command", metavar="ACTION")
    sv_sub.required = True
    for name, helptext in (
        ("install", "install and start a service that runs `datauploader sync` with these arguments"),
        ("show", "print the unit (or on Windows the schtasks command) without installing anything"),
    ):
        p = sv_sub.add_parser(name, help=helptext)
        p.add_argument("paths", nargs="+", metavar="PATH", help="folders to sync")
        p.add_argument("--dataset", required=True, metavar="NAME", help="dataset name")
        p.add_argument("--investigation", metavar="ID")
        p.add_argument("--description", metavar="TEXT")
        p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--profile", metavar="NAME")
        p.add_argument("--bwlimit", metavar="RATE")
        p.add_argument("--transfers", metavar="N")
        p.add_argument("--settle", metavar="SECONDS")
        if name == "install":
            p.add_argument(
                "--no-start", action="store_true", help="write the unit but do not enable/start it"
            )
        p.set_defaults(handler=cmd_service_install if name == "install" else cmd_service_show)
    un = sv_sub.add_parser("uninstall", help="stop (gracefully) and remove the service of a dataset")
    un.add_argument("--dataset", required=True, metavar="NAME")
    un.set_defaults(handler=cmd_service_uninstall)
    ls = sv_sub.add_parser("list", help="list the installed services")
    ls.set_defaults(handler=cmd_service_list)


def cmd_autostart(args: argparse.Namespace) -> int:
    if args.state == "on":
        st = autostart.enable()
    elif args.state == "off":
        st = autostart.disable()
    else:
        st = autostart.status()
    print(f"start at login: {'on' if st.enabled else 'off'} ({st.where})")
    if st.enabled and st.command:
        print(f"runs: {st.command}")
    return 0


def _spec(args: argparse.Namespace) -> service.ServiceSpec:
    sync_args = [os.path.abspath(p) for p in args.paths]
    sync_args += ["--dataset", args.dataset]
    for opt in ("investigation", "description", "profile", "bwlimit", "transfers", "settle"):
        value = getattr(args, opt)
        if value is not None:
            sync_args += [f"--{opt}", str(value)]
    for kv in args.meta:
        sync_args += ["--meta", kv]
    home = os.environ.get(HOME_ENV)
    return service.ServiceSpec(
        dataset=args.dataset, sync_args=tuple(sync_args), home=os.path.abspath(home) if home else None
    )


def cmd_service_show(args: argparse.Namespace) -> int:
    spec = _spec(args)
    if sys.platform == "win32":
        print(subprocess.list2cmdline(service.task_scheduler_command(spec)))
    else:
        sys.stdout.write(service.unit_text(spec))
    return 0


def cmd_service_install(args: argparse.Namespace) -> int:
    spec = _spec(args)
    if sys.platform == "win32":
        print("On Windows, run this once (a Task Scheduler task that starts the sync when you log on):")
        print(subprocess.list2cmdline(service.task_scheduler_command(spec)))
        return 0
    result = service.install(spec, start=not args.no_start)
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


def cmd_service_uninstall(args: argparse.Namespace) -> int:
    unit = service.uninstall(args.dataset)
    if unit is None:
        print(f"no service for dataset '{args.dataset}'")
        return 1
    print(f"stopped and removed {unit}")
    return 0


def cmd_service_list(args: argparse.Namespace) -> int:
    units = service.installed()
    if not units:
        print("no services installed")
    for unit in units:
        print(unit)
    return 0


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (OSError, KeyError):
        return "$USER"
