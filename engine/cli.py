"""The ``datauploader`` command: the headless front end over the engine's public API.

Exit codes: 0 everything done, 1 some files failed (each listed, the rest done), 2 usage or configuration
error with nothing transferred, 130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from types import FrameType
from typing import Any, NoReturn

from engine import __version__
from engine.catalogue import Catalogue, Credentials, Session, open_catalogue, require_session
from engine.config import Profile, load_config, parse_duration
from engine.datasets import DatasetRequest, parse_meta
from engine.errors import DataUploaderError, UsageError
from engine.home import resolve_home
from engine.logs import setup_logging
from engine.progress import Snapshot
from engine.rclone import RcloneError
from engine.rclone.errors import classify
from engine.report import UploadReport
from engine.status import STATUS_VERSION, dataset_status
from engine.upload import UploadRequest, upload


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _duration(s: float | None) -> str:
    if s is None:
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class _ProgressLine:
    """One self-overwriting line on a terminal; nothing at all when stderr is not a TTY (cron, CI, pipes)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._width = 0

    def __call__(self, snap: Snapshot) -> None:
        if not self.enabled:
            return
        text = (
            f"{snap.files_done}/{snap.files_total} files  {_size(snap.bytes_done)}/{_size(snap.bytes_total)}  "
            f"{_size(snap.rate)}/s  ETA {_duration(snap.eta)}"
            + (f"  {snap.failed} failed" if snap.failed else "")
        )
        pad = max(0, self._width - len(text))
        self._width = len(text)
        sys.stderr.write("\r" + text + " " * pad)
        sys.stderr.flush()

    def end(self) -> None:
        if self.enabled and self._width:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="files and folders to upload")
    p.add_argument("--dataset", required=True, metavar="NAME", help="dataset name (a folder on storage)")
    p.add_argument("--investigation", metavar="ID", help="investigation / proposal the dataset belongs to")
    p.add_argument("--description", metavar="TEXT", help="dataset description")
    p.add_argument("--investigation-description", metavar="TEXT", help="investigation description")
    p.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE", help="free metadata (repeatable)"
    )
    p.add_argument("--profile", metavar="NAME", help="profile in config.toml (default: 'default')")
    p.add_argument(
        "--bwlimit", metavar="RATE", help="bandwidth limit in rclone syntax, e.g. 10M or '08:00,5M 20:00,off'"
    )
    p.add_argument(
        "--transfers",
        type=_positive,
        metavar="N",
        help="parallel file transfers per batch (default: profile, else 4)",
    )


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to 256")
    return n


def _settle(text: str) -> float:
    try:
        return parse_duration(text, "--settle")
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(" = ", 1)[-1]) from None


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line that says what to do, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"datauploader: error: {message}; see `{self.prog} --help`\n")


def _unknown_options(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """The message for options the (sub)command does not know, with the near miss a typo most likely meant."""
    known = [o for a in parser._actions for o in a.option_strings]
    parts = []
    for extra in extras:
        guess = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1) if extra.startswith("-") else []
        parts.append(f"{extra} (did you mean {guess[0]}?)" if guess else extra)
    return "unrecognized arguments: " + " ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="datauploader",
        description="Upload instrument data to facility storage and register it in the data catalogue.",
    )
    parser.add_argument("--version", action="version", version=f"datauploader {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    up = sub.add_parser("upload", help="upload files and folders as one dataset (batch mode)")
    _add_dataset_options(up)

    sy = sub.add_parser("sync", help="upload files as they are written, until stopped (sync mode)")
    _add_dataset_options(sy)
    sy.add_argument(
        "--settle",
        type=_settle,
        metavar="DURATION",
        help="a file is complete when unchanged this long (default: profile 'settle', else 2)",
    )

    st = sub.add_parser("status", help="show every dataset with its state and counts")
    st.add_argument("--json", action="store_true", help="machine-readable output (documented shape)")

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
    ve = sub.add_parser("verify", help="re-check datasets on the storage against what DataUploader stored")
    ve.add_argument("--dataset", metavar="NAME", help="only this dataset (default: all)")
    ve.add_argument(
        "--download",
        action="store_true",
        help="read every file back and compare its sha256 (slow; proves content on any storage)",
    )

    sub.add_parser(
        "repair", help="move a damaged journal aside and rebuild it (never changes anything on the storage)"
    )
    for choice in sub.choices.values():  # -v works after the sub-command too
        choice.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _dataset_request(args: argparse.Namespace) -> DatasetRequest:
    return DatasetRequest(
        name=args.dataset,
        investigation=args.investigation,
        description=args.description,
        investigation_description=args.investigation_description,
        meta=parse_meta(args.meta),
    )


def _request_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The options upload and sync share."""
    return {
        "paths": args.paths,
        "dataset": _dataset_request(args),
        "profile": args.profile,
        "bwlimit": args.bwlimit,
        "transfers": args.transfers,
    }


def cmd_upload(args: argparse.Namespace) -> int:
    home = resolve_home()
    line = _ProgressLine()
    stop = threading.Event()
    try:
        report = upload(
            home,
            UploadRequest(**_request_fields(args)),
            progress=line,
            stop=stop,
        )
    finally:
        line.end()
    return _print_report(report)


MAX_LISTED = 50  # failed files listed in full; `status` lists the rest


def _print_report(report: UploadReport) -> int:
    out = sys.stdout
    rate = report.bytes_uploaded / report.elapsed if report.elapsed > 0 else 0.0
    out.write(
        f"dataset '{report.name}': {report.files_done}/{report.files_total} files registered "
        f"({_size(report.bytes_done)} of {_size(report.bytes_total)}), {report.files_uploaded} uploaded now "
        f"({_size(report.bytes_uploaded)} at {_size(rate)}/s) -> {report.location}\n"
    )
    for rel, reason in report.skipped[:MAX_LISTED]:
        out.write(f"SKIPPED {rel}: {reason}\n")
    if len(report.skipped) > MAX_LISTED:
        out.write(f"... and {len(report.skipped) - MAX_LISTED} more skipped entries\n")
    for rel, reason in report.failed[:MAX_LISTED]:
        out.write(f"FAILED {rel}: {reason}\n")
    if len(report.failed) > MAX_LISTED:
        out.write(
            f"... and {len(report.failed) - MAX_LISTED} more failed files; `datauploader status` lists them\n"
        )
    for problem in report.problems:
        out.write(f"ERROR {problem}\n")
    if report.failed:
        out.write(f"{len(report.failed)} file(s) failed; fix the cause and run the same command again\n")
    elif report.problems:
        out.write("the dataset is not complete; fix the cause and run the same command again\n")
    return report.exit_code


def cmd_sync(args: argparse.Namespace) -> int:
    from engine.sync import SyncRequest, SyncSession  # watchdog is only needed here

    home = resolve_home()
    line = _ProgressLine()
    session = SyncSession(
        home,
        SyncRequest(**_request_fields(args), settle=args.settle),
        progress=line,
    )
    signals = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            line.end()
            sys.stderr.write(
                "datauploader: stopping: finishing the files in flight (Ctrl-C again to abort)\n"
            )
            session.stop()
        else:
            session.abort()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    try:
        report = session.run()
    finally:
        line.end()
    return _print_report(report)


def cmd_status(args: argparse.Namespace) -> int:
    home = resolve_home()
    sets = dataset_status(home)
    if args.json:
        json.dump({"version": STATUS_VERSION, "datasets": [d.to_json() for d in sets]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not sets:
        print("no datasets yet")
        return 0
    for d in sets:
        inv = f"{d.investigation}/" if d.investigation else ""
        print(
            f"{inv}{d.name} [{d.profile}] {d.state}: {d.files_done}/{d.files_total} files, "
            f"{_size(d.bytes_done)}/{_size(d.bytes_total)}"
            + (f", {d.files_failed} failed" if d.files_failed else "")
            + f" -> {d.location}"
        )
        if d.progress:
            p = d.progress
            print(
                f"    {p.phase}: {p.files_done}/{p.files_total} files, {_size(p.bytes_done)}/"
                f"{_size(p.bytes_total)} at {_size(p.rate)}/s, ETA {_duration(p.eta)} (pid {p.pid})"
            )
        for f in d.failures:
            print(f"    FAILED {f['path']}: {f['reason']}")
    return 0


def _catalogue(profile_name: str | None) -> tuple[Profile, Catalogue]:
    home = resolve_home()
    home.ensure()
    profile = load_config(home).profile(profile_name)
    return profile, open_catalogue(profile, home)


def _when(ts: float | None) -> str:
    return "never" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


def _print_session(session: Session) -> None:
    print(f"user:    {session.user}")
    print(f"e-mail:  {session.email or '-'}")
    print(f"groups:  {', '.join(session.groups) or '-'}")
    left = "" if session.expires is None else f" (in {_duration(max(0.0, session.expires - time.time()))})"
    print(f"expires: {_when(session.expires)}{left}")


def cmd_login(args: argparse.Namespace) -> int:
    profile, catalogue = _catalogue(args.profile)
    try:
        if not catalogue.needs_login:
            print(f"profile '{profile.name}' uses the {catalogue.name} catalogue, which needs no login")
            return 0
        if args.token_stdin:
            token = sys.stdin.read().strip()
            if not token:
                raise UsageError("no token on standard input")
            credentials = Credentials(token=token)
        else:
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
                raise UsageError(
                    "give --password-stdin (or --token-stdin) when standard input is not a terminal"
                )
            credentials = Credentials(username=username, password=password)
        session = catalogue.login(credentials)
    finally:
        catalogue.close()
    print(f"logged in to the {catalogue.name} catalogue of profile '{profile.name}'")
    _print_session(session)
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    profile, catalogue = _catalogue(args.profile)
    try:
        catalogue.logout()
    finally:
        catalogue.close()
    print(f"logged out of the {catalogue.name} catalogue of profile '{profile.name}'")
    return 0


def cmd_whoami(args: argparse.Namespace) -> int:
    profile, catalogue = _catalogue(args.profile)
    try:
        session = require_session(catalogue, profile.name) or catalogue.session()
    finally:
        catalogue.close()
    assert session is not None
    print(f"catalogue: {catalogue.name} (profile '{profile.name}')")
    _print_session(session)
    return 0


def cmd_investigations(args: argparse.Namespace) -> int:
    profile, catalogue = _catalogue(args.profile)
    try:
        require_session(catalogue, profile.name)
        found = catalogue.list_investigations()
    finally:
        catalogue.close()
    if args.json:
        json.dump([asdict(i) for i in found], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not found:
        print("no investigations" + (" you may upload to" if catalogue.needs_login else " yet"))
    for inv in found:
        print(inv.id + (f"  {inv.title}" if inv.title and inv.title != inv.id else ""))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from engine.verify import verify

    results = verify(resolve_home(), dataset=args.dataset, download=args.download)
    if not results:
        print("no datasets yet")
    bad = 0
    for res in results:
        state = "OK" if not res.differences else f"{len(res.differences)} DIFFERENT"
        print(
            f"dataset '{res.dataset}': {res.checked} files checked by {res.method}: {state} -> {res.location}"
        )
        for rel, problem in res.differences[:MAX_LISTED]:
            print(f"DIFFERENT {rel}: {problem}")
        if len(res.differences) > MAX_LISTED:
            print(f"... and {len(res.differences) - MAX_LISTED} more")
        bad += len(res.differences)
    if bad:
        print(f"{bad} file(s) on the storage differ from what DataUploader stored")
    return 1 if bad else 0


def cmd_repair(args: argparse.Namespace) -> int:
    from engine.repair import repair

    report = repair(resolve_home())
    if report.damaged is None:
        print("the journal is readable; nothing to move aside")
    else:
        print(f"the journal was damaged ({report.damaged}); it was moved to {report.moved_to}")
        print(f"recovered {len(report.datasets)} dataset(s) and {report.files} file record(s) from it")
    if report.from_catalogue:
        print(
            f"restored {len(report.from_catalogue)} dataset(s) from the local catalogue: "
            + ", ".join(report.from_catalogue)
        )
    print(
        "run your upload or sync command again: files already on the storage are checked and adopted when their "
        "content matches, nothing is overwritten"
    )
    return 0


_COMMANDS = {
    "upload": cmd_upload,
    "sync": cmd_sync,
    "status": cmd_status,
    "login": cmd_login,
    "logout": cmd_logout,
    "whoami": cmd_whoami,
    "investigations": cmd_investigations,
    "verify": cmd_verify,
    "repair": cmd_repair,
}


def _sigterm(signum: int, frame: FrameType | None) -> Any:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = next((w for w in words if not w.startswith("-")), None)
    if command in subparsers.choices:
        # Unknown options first: a typo'd --datset must not surface as "--dataset is required".
        subparser = subparsers.choices[command]
        known = {o for a in subparser._actions for o in a.option_strings} | {"--"}
        unknown = [w for w in words if w.startswith("--") and w.split("=", 1)[0] not in known]
        if unknown:
            subparser.error(_unknown_options(subparser, unknown))
    args = parser.parse_args(words)
    try:
        home = resolve_home()
        setup_logging(home, verbose=args.verbose)
    except OSError as exc:
        print(f"datauploader: error: cannot use the home folder: {exc}", file=sys.stderr)
        return 2
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)
    try:
        return _COMMANDS[args.command](args)
    except DataUploaderError as exc:
        print(f"datauploader: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except RcloneError as exc:
        print(
            f"datauploader: error: {classify(exc.message).reason}; run the same command again",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("datauploader: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `datauploader status | head`: the reader is gone; say nothing more (flushing at exit would fail too).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
