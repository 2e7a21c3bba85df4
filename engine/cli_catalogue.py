"""The CLI's catalogue commands: ``login``, ``logout``, ``whoami``, ``investigations`` — over the engine's API."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine import Credentials, Engine, Session


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    li = sub.add_parser(
        "login", help="log in to the profile's catalogue (the token is kept, never the password)"
    )
    li.add_argument("--profile", metavar="NAME", help="profile in config.toml (default: 'default')")
    li.add_argument("--username", metavar="USER", help="user name (asked for when not given)")
    how = li.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    how.add_argument(
        "--token-stdin",
        action="store_true",
        help="read a token (JWT, e.g. copied from SciCat) from standard input",
    )
    lo = sub.add_parser("logout", help="forget the stored login of the profile's catalogue")
    lo.add_argument("--profile", metavar="NAME", help="profile in config.toml (default: 'default')")
    wh = sub.add_parser("whoami", help="show who is logged in to the profile's catalogue, and until when")
    wh.add_argument("--profile", metavar="NAME", help="profile in config.toml (default: 'default')")
    iv = sub.add_parser("investigations", help="list the investigations (proposals) you may upload to")
    iv.add_argument("--profile", metavar="NAME", help="profile in config.toml (default: 'default')")
    iv.add_argument("--json", action="store_true", help="machine-readable output")


def _print_session(session: Session) -> None:
    from engine.cli_format import duration, when

    print(f"user:    {session.user}")
    print(f"e-mail:  {session.email or '-'}")
    print(f"groups:  {', '.join(session.groups) or '-'}")
    left = "" if session.expires is None else f" (in {duration(max(0.0, session.expires - time.time()))})"
    print(f"expires: {when(session.expires)}{left}")


def _credentials(args: argparse.Namespace) -> Credentials:
    from engine import Credentials, UsageError

    if args.token_stdin:
        token = sys.stdin.read().strip()
        if not token:
            raise UsageError("no token on standard input")
        return Credentials(token=token)
    username = args.username
    if not username:
        if not sys.stdin.isatty():
            raise UsageError("give --username (standard input is not a terminal)")
        username = input("user name: ").strip()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {username}: ")
    else:
        raise UsageError("give --password-stdin (or --token-stdin) when standard input is not a terminal")
    return Credentials(username=username, password=password)


def cmd_login(engine: Engine, args: argparse.Namespace) -> int:
    profile = engine.config().profile(args.profile)
    info = next(p for p in engine.profiles() if p.name == profile.name)
    if not info.needs_login:
        print(f"profile '{profile.name}' uses the {info.catalogue} catalogue, which needs no login")
        return 0
    engine.probe_catalogue(profile=profile.name)  # an unreachable or wrong server is said before the password
    session = engine.login(_credentials(args), profile=profile.name)
    print(f"logged in to the {info.catalogue} catalogue of profile '{profile.name}'")
    _print_session(session)
    return 0


def cmd_logout(engine: Engine, args: argparse.Namespace) -> int:
    profile = engine.config().profile(args.profile)
    name = engine.catalogue_name(profile=profile.name)
    was = engine.whoami(profile=profile.name)
    engine.logout(profile=profile.name)
    info = next(p for p in engine.profiles() if p.name == profile.name)
    if not info.needs_login:
        print(f"profile '{profile.name}' uses the {name} catalogue, which needs no login")
    elif was is None:
        print(f"nobody was logged in to the {name} catalogue of profile '{profile.name}'; nothing to do")
    else:
        print(f"logged out {was.user} from the {name} catalogue of profile '{profile.name}'")
    return 0


def cmd_whoami(engine: Engine, args: argparse.Namespace) -> int:
    profile = engine.config().profile(args.profile)
    session = engine.require_login(profile=profile.name) or engine.whoami(profile=profile.name)
    assert session is not None
    print(f"catalogue: {engine.catalogue_name(profile=profile.name)} (profile '{profile.name}')")
    _print_session(session)
    return 0


def cmd_investigations(engine: Engine, args: argparse.Namespace) -> int:
    profile = engine.config().profile(args.profile)
    found = engine.investigations(profile=profile.name)
    if args.json:
        json.dump([asdict(i) for i in found], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    info = next(p for p in engine.profiles() if p.name == profile.name)
    if not found:
        print("no investigations" + (" you may upload to" if info.needs_login else " yet"))
    for inv in found:
        print(inv.id + (f"  {inv.title}" if inv.title and inv.title != inv.id else ""))
    return 0


COMMANDS = {
    "login": cmd_login,
    "logout": cmd_logout,
    "whoami": cmd_whoami,
    "investigations": cmd_investigations,
}
