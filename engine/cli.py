"""The ``datauploader`` command: the headless front end, a client of the engine's public API like the tray.

Exit codes: 0 everything done, 1 some files failed (each listed, the rest done), 2 usage or configuration error
with nothing transferred, 130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from engine import __version__
from engine.cli_catalogue import add_parsers as add_catalogue_parsers
from engine.cli_system import add_parsers as add_system_parsers

if TYPE_CHECKING:  # the rest of the engine is imported when a command runs: --help and --version stay instant
    from engine import DatasetHandle, DatasetSpec, Engine, Event
    from engine.cli_format import ProgressLine

EPILOG = """\
where things are:
  settings, journal, logs and the default storage folder live in $DATAUPLOADER_HOME when it is set, else in
  the per-user folders; `datauploader config` shows the paths and the profiles of config.toml.

exit codes:
  0  everything done    1  some files failed (each listed; run again)    2  usage or configuration error,
  nothing transferred    130  interrupted (run the same command again to resume)
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line that says what to do, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"datauploader: error: {message}; see `{self.prog} --help`\n")


def _unknown_options(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """The message for options the (sub)command does not know, with the near miss a typo most likely meant."""
    import difflib  # only for a typo: not worth its import on every command

    known = [o for a in parser._actions for o in a.option_strings]
    parts = []
    for extra in extras:
        guess = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1) if extra.startswith("-") else []
        parts.append(f"{extra} (did you mean {guess[0]}?)" if guess else extra)
    return "unrecognized arguments: " + " ".join(parts)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to 256")
    return n


def _settle(text: str) -> float:
    from engine import UsageError, parse_duration

    try:
        return parse_duration(text, "--settle")
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(" = ", 1)[-1]) from None


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="files and folders to upload")
    p.add_argument("--dataset", required=True, metavar="NAME", help="dataset name (a folder on storage)")
    p.add_argument("--investigation", metavar="ID", help="investigation / proposal the dataset belongs to")
    p.add_argument("--description", metavar="TEXT", help="dataset description")
    p.add_argument("--investigation-description", metavar="TEXT", help="investigation description")
    p.add_argument(
        "--investigation-title", metavar="TEXT", help="title of the investigation, if it has to be created"
    )
    p.add_argument("--pi", metavar="EMAIL", help="principal investigator (default: the investigation's)")
    p.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE", help="free metadata (repeatable)"
    )
    p.add_argument("--profile", metavar="NAME", help="profile in config.toml (default: 'default')")
    p.add_argument(
        "--storage",
        metavar="REMOTE:PATH|FOLDER",
        help="where the data goes, instead of the profile's storage: a folder, or an rclone remote path "
        "(a remote named in rclone's config, e.g. facility:raw)",
    )
    p.add_argument(
        "--bwlimit", metavar="RATE", help="bandwidth limit in rclone syntax, e.g. 10M or '08:00,5M 20:00,off'"
    )
    p.add_argument(
        "--transfers",
        type=_positive,
        metavar="N",
        help="parallel file transfers per batch (default: profile, else 4)",
    )


def build_parser(*, plugins: bool = True) -> argparse.ArgumentParser:
    """``plugins=False`` leaves out the sub-commands other packages add: finding them reads every installed
    package's metadata (~50 ms), which a built-in command need not pay for."""
    parser = _Parser(
        prog="datauploader",
        description="Upload instrument data to facility storage and register it in the data catalogue.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        help="a file is complete when unchanged this long, e.g. 2s or 500ms (default: profile 'settle', else 2s)",
    )
    st = sub.add_parser("status", help="show every dataset with its state and counts, or one dataset's files")
    st.add_argument("dataset", nargs="?", metavar="DATASET", help="show this dataset's files, one per line")
    st.add_argument("--investigation", metavar="ID", help="which DATASET, when several have its name")
    st.add_argument("--profile", metavar="NAME", help="which DATASET, when several have its name")
    st.add_argument("--json", action="store_true", help="machine-readable output (documented shape)")
    fo = sub.add_parser(
        "forget",
        help="remove a dataset from the journal (nothing on the storage or in the catalogue changes)",
    )
    fo.add_argument("dataset", metavar="DATASET", help="the dataset's name")
    fo.add_argument("--investigation", metavar="ID", help="which DATASET, when several have its name")
    fo.add_argument("--profile", metavar="NAME", help="which DATASET, when several have its name")
    sub.add_parser(
        "config", help="show where DataUploader keeps its settings, journal and log, and the profiles"
    )
    add_catalogue_parsers(sub)
    add_system_parsers(sub)  # autostart, service
    ve = sub.add_parser("verify", help="re-check datasets on the storage against what DataUploader stored")
    ve.add_argument("--dataset", metavar="NAME", help="only this dataset (default: all)")
    ve.add_argument(
        "--download",
        action="store_true",
        help="read every file back and compare its sha256 (slow; any storage)",
    )
    sub.add_parser("repair", help="move a damaged journal aside and rebuild it (never changes the storage)")
    for name, (helptext, _) in (_plugins() if plugins else {}).items():
        pp = sub.add_parser(name, help=helptext)
        pp.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    for choice in sub.choices.values():  # -v works after the sub-command too
        choice.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


# -- upload and sync -----------------------------------------------------------------------------------------


def _spec(args: argparse.Namespace, mode: str) -> DatasetSpec:
    from engine import DatasetSpec, parse_meta

    return DatasetSpec(
        paths=tuple(args.paths),
        name=args.dataset,
        investigation=args.investigation,
        description=args.description,
        investigation_description=args.investigation_description,
        meta=parse_meta(args.meta),
        pi=args.pi,
        investigation_title=args.investigation_title,
        profile=args.profile,
        mode="sync" if mode == "sync" else "batch",
        settle=getattr(args, "settle", None),
        bwlimit=args.bwlimit,
        transfers=args.transfers,
        storage=args.storage,
    )


def _run(engine: Engine, args: argparse.Namespace, line: ProgressLine) -> int:
    """Start one dataset, show progress from the engine's events, map Ctrl-C/SIGTERM to stopping it."""
    from engine import ProgressUpdate
    from engine.cli_format import print_report

    mode = args.command
    spec = _spec(args, mode)

    def on_event(ev: Event) -> None:
        if isinstance(ev, ProgressUpdate):
            line.show(ev)

    unsubscribe = engine.subscribe(on_event, (ProgressUpdate,))
    handle: DatasetHandle = engine.start_sync(spec) if mode == "sync" else engine.upload(spec)
    signals = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        line.clear()
        if signals == 1 and mode == "sync":
            sys.stderr.write(
                "datauploader: stopping: finishing the files in flight (Ctrl-C again to abort)\n"
            )
            engine.stop_sync(handle, finish=True)
        else:
            engine.stop_sync(handle, finish=False)

    _on_signals(on_signal)
    try:
        while not handle.done:  # short waits: signal handlers run between them
            handle.wait(0.2)
        report = handle.wait()
    finally:
        unsubscribe()
        line.clear()
    assert report is not None
    return print_report(report, args.profile)


def _on_signals(handler: Callable[[int, FrameType | None], None]) -> None:
    """Ctrl-C, SIGTERM (systemd, logout) and, on Windows, Ctrl-Break (what a service manager or `taskkill`
    without /F can send a console program) all ask for the same graceful stop."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        if hasattr(signal, "SIGBREAK"):  # pragma: no cover - Windows
            signal.signal(signal.SIGBREAK, handler)


# -- status, verify, repair, tray ------------------------------------------------------------------------------


def cmd_status(engine: Engine, args: argparse.Namespace) -> int:
    from engine import STATUS_VERSION, status_json
    from engine.cli_format import duration, size, when

    if args.dataset:
        return _status_files(engine, args)
    sets = engine.snapshot().datasets
    if args.json:
        json.dump(
            {"version": STATUS_VERSION, "datasets": [status_json(d) for d in sets]}, sys.stdout, indent=2
        )
        sys.stdout.write("\n")
        return 0
    if not sets:
        print("no datasets yet")
        return 0
    for d in sets:
        inv = f"{d.investigation}/" if d.investigation else ""
        others = ", ".join(
            f"{n} {k}" for k, n in sorted(d.by_state.items()) if k not in ("registered", "failed") and n
        )
        print(
            f"{inv}{d.name} [{d.profile}] {d.state}: {d.files_done}/{d.files_total} files registered, "
            f"{size(d.bytes_done)} of {size(d.bytes_total)}"
            + (f", {d.files_failed} failed" if d.files_failed else "")
            + (f" ({others})" if others else "")
            + f" -> {d.location}"
        )
        print(f"    started {when(d.created)}, last change {when(d.updated)}")
        if d.live is not None:
            p = d.live
            print(
                f"    {p.phase}: {p.files_done}/{p.files_total} files, {size(p.bytes_done)}/"
                f"{size(p.bytes_total)} at {size(p.rate)}/s, ETA {duration(p.eta)} (pid {p.pid})"
            )
        for f in d.failures:
            print(f"    FAILED {f.path}: {f.reason}")
        for f in d.skipped:
            print(f"    SKIPPED {f.path}: {f.reason}")
    return 0


def _status_files(engine: Engine, args: argparse.Namespace) -> int:
    from engine import STATUS_VERSION, status_json
    from engine.cli_format import size, when

    d = engine.find(args.dataset, investigation=args.investigation, profile=args.profile)
    files = engine.files(d)
    if args.json:
        json.dump(
            {"version": STATUS_VERSION, "dataset": status_json(d), "files": [asdict(f) for f in files]},
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    print(f"{d.name} [{d.profile}] {d.state} -> {d.location}")
    for f in files:
        shown = size(f.size) if f.size is not None else "-"
        check = f" ({f.verification})" if f.verification and f.state in ("verified", "registered") else ""
        reason = (
            f": {f.reason}" if f.reason and f.state in ("failed", "refused", "skipped", "uploading") else ""
        )
        print(
            f"{f.state:<11} {shown:>10}  {when(f.updated) if f.updated else '-':<23}  {f.path}{check}{reason}"
        )
    return 0


def cmd_forget(engine: Engine, args: argparse.Namespace) -> int:
    d = engine.find(args.dataset, investigation=args.investigation, profile=args.profile)
    n = engine.forget(d)
    print(
        f"forgot dataset '{d.name}' ({n} file records); nothing on the storage ({d.location}) or in the "
        "catalogue was changed"
    )
    return 0


def cmd_config(engine: Engine, args: argparse.Namespace) -> int:
    home, config = engine.home, engine.config()
    from_env = os.environ.get("DATAUPLOADER_HOME")
    print(
        f"data home:   {home.data_dir}" + (" (DATAUPLOADER_HOME)" if from_env else " (the per-user folders)")
    )
    state = "" if config.source else "  (not there: the embedded default is used)"
    print(f"config file: {home.config_file}{state}")
    print(f"journal:     {home.journal_file}")
    print(f"log file:    {home.log_dir / 'datauploader.log'}")
    print("profiles:")
    for p in engine.profiles():
        login = ", needs a login" if p.needs_login else ""
        default = " (the default)" if p.name == "default" else ""
        print(f"  {p.name}{default}: storage {p.storage}, {p.catalogue} catalogue{login}")
    return 0


def cmd_verify(engine: Engine, args: argparse.Namespace) -> int:
    from engine.cli_format import MAX_LISTED

    results = engine.verify(dataset=args.dataset, download=args.download)
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


def cmd_repair(engine: Engine, args: argparse.Namespace) -> int:
    report = engine.repair()
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


PLUGIN_GROUP = "datauploader.commands"
BUILT_IN = frozenset(
    {"upload", "sync", "status", "forget", "config", "verify", "repair", "login", "logout", "whoami"}
    | {"investigations", "autostart", "service"}
)


def _plugins() -> dict[str, tuple[str, Callable[[], Callable[[list[str]], int]]]]:
    """Sub-commands other packages add (the tray adds ``tray``): the engine never imports a front end, front ends
    register themselves. ``name → (help, loader of main(argv) -> exit code)``."""
    from importlib.metadata import entry_points

    found: dict[str, tuple[str, Callable[[], Callable[[list[str]], int]]]] = {}
    for ep in entry_points(group=PLUGIN_GROUP):
        helptext = ep.value.split(":")[0].rsplit(".", 1)[0]
        found[ep.name] = (f"start the {ep.name} ({helptext})", ep.load)
    return found


def _plugin(engine: Engine, args: argparse.Namespace) -> int:
    engine.close()  # the plugin makes its own engine, on its own threads
    main = _plugins()[args.command][1]()
    return int(main(list(args.rest)) or 0)


_COMMANDS: dict[str, Callable[[Engine, argparse.Namespace], int]] = {
    "status": cmd_status,
    "verify": cmd_verify,
    "repair": cmd_repair,
    "forget": cmd_forget,
    "config": cmd_config,
}


def _parse(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = next((w for w in words if not w.startswith("-")), None)
    if command in subparsers.choices:
        # Unknown options first: a typo'd --datset must not surface as "--dataset is required".
        subparser = subparsers.choices[command]
        known = {o for a in subparser._actions for o in a.option_strings} | {"--"}
        unknown = [w for w in words if w.startswith("--") and w.split("=", 1)[0] not in known]
        if unknown:
            subparser.error(_unknown_options(subparser, unknown))
    return parser.parse_args(words)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((w for w in words if not w.startswith("-")), None)
    args = _parse(build_parser(plugins=command not in BUILT_IN), words)
    # From here on Ctrl-C or SIGTERM ends quietly (130), never with a traceback. While the engine is imported (rclone
    # may be starting meanwhile) a signal is only noted and honoured right after: raised in the middle of an import
    # it could leave a module half made (and Python, interrupted inside a dataclass's generated code, would even
    # report the handled interrupt as unhandled at exit).
    signals: list[int] = []
    _on_signals(lambda signum, frame: signals.append(signum))
    early = args.command in ("upload", "sync")
    collecting = gc.isenabled()
    # No garbage collection while the engine loads: importing makes tens of thousands of objects and no garbage,
    # yet Python would walk them again and again (5 % of the start of a command, measured).
    gc.disable()
    try:
        code = _main(args, early, signals, own_process=argv is None)
    except KeyboardInterrupt:
        code = _interrupted_exit()
    finally:
        if early:  # a daemon started early that no run adopted (interrupted or refused before it began)
            from engine import stop_rclone_early

            stop_rclone_early()
        if collecting:
            gc.enable()
        if argv is None:
            # The process ends now. Python's last garbage collection would walk every object of the engine
            # (~40 ms of each run, measured); frozen, they are simply left to the operating system.
            gc.freeze()
    if argv is None and not any(t.is_alive() and not t.daemon for t in _others()):
        _leave(code)
    return code


def _others() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.main_thread()]


def _leave(code: int) -> NoReturn:
    """End the process now. Everything is written and closed (the engine joined its threads, the journal is
    checkpointed, rclone is stopped), so what Python's own shutdown would still do — take apart every module and
    object of the engine — serves nobody: ~10 ms of each command, measured."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing more to say anyway
            stream.flush()
    os._exit(code)


def _main(args: argparse.Namespace, early: bool, signals: list[int], *, own_process: bool) -> int:
    from engine import resolve_home

    try:
        home = resolve_home()
    except OSError as exc:
        print(f"datauploader: error: cannot use the home folder: {exc}", file=sys.stderr)
        return 2
    if early:
        # rclone comes up while Python imports the rest of the engine (~0.1 s each); the engine adopts it.
        from engine import start_rclone_early

        start_rclone_early(home, args.profile, args.bwlimit)
    from engine import LOG_FILE_ONLY, Cancelled, DataUploaderError, Engine, setup_logging
    from engine.cli_catalogue import COMMANDS as CATALOGUE_COMMANDS
    from engine.cli_format import ProgressLine, hint
    from engine.cli_system import COMMANDS as SYSTEM_COMMANDS

    if own_process:  # (a caller in the same process gets collection back when main returns)
        gc.freeze()  # what the imports made lives as long as the process: out of every later collection
        gc.enable()
    if signals:
        raise KeyboardInterrupt
    # Until a command installs its own handlers.
    _on_signals(lambda signum, frame: _interrupted())

    commands = {**_COMMANDS, **CATALOGUE_COMMANDS, **SYSTEM_COMMANDS}
    line = ProgressLine()
    try:
        setup_logging(home, verbose=args.verbose, before_console=line.clear)
    except OSError as exc:
        print(f"datauploader: error: cannot use the home folder: {exc}", file=sys.stderr)
        return 2
    try:
        with Engine(home) as engine:
            if args.command in ("upload", "sync"):
                return _run(engine, args, line)
            return commands.get(args.command, _plugin)(engine, args)
    except Cancelled:
        return _interrupted_exit()
    except KeyboardInterrupt:
        return _interrupted_exit()
    except DataUploaderError as exc:
        logging.getLogger("engine.cli").error("datauploader %s: %s", args.command, exc, extra=LOG_FILE_ONLY)
        todo = hint(exc.action, getattr(args, "profile", None))
        known = "`datauploader" in str(exc)  # the message names the command already
        print(f"datauploader: error: {exc}" + (f"; {todo}" if todo and not known else ""), file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `datauploader status | head`: the reader is gone; say nothing more (flushing at exit would fail too).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _interrupted_exit() -> int:
    """Say so and exit 130. A KeyboardInterrupt raised inside code Python runs with ``exec`` (a dataclass's generated
    methods, while a module loads) leaves CPython's "unhandled interrupt" flag set even once it is handled, and the
    process would then end by SIGINT instead of 130; any later ``exec`` clears that flag."""
    exec("")
    print("datauploader: interrupted; run the same command again to resume", file=sys.stderr)
    return 130


def _interrupted() -> NoReturn:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
