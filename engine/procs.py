"""Child processes that live and die with this one, and process liveness checks.

The rclone daemon must never outlive DataUploader: an orphaned daemon keeps files open and holds storage
credentials in its environment. On Linux the kernel delivers a signal to the child when its parent dies
(``PR_SET_PDEATHSIG``); on Windows the child joins a job object that kills its members when the last handle to
it closes, which happens when this process ends however it ends.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover - Windows
        kernel32 = _kernel32()
        handle = kernel32.OpenProcess(0x1000, False, pid)
        if handle:
            kernel32.CloseHandle(handle)
            return True
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but belongs to someone else
    return True


def die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when its parent dies (Linux), else None.

    The kernel ties the signal to the *thread* that forked, so callers must spawn from a thread that lives as long
    as the child should (see :class:`engine.rclone.daemon.RcloneDaemon`).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the prctl took effect
            os._exit(1)

    return hook


_job: int | None = None


def bind_to_this_process(proc: subprocess.Popen[str]) -> None:
    """Windows: put ``proc`` in a job object that is closed (killing it) when this process ends."""
    if sys.platform != "win32":
        return
    global _job
    try:  # pragma: no cover - Windows only
        _job = _job or _kill_on_close_job()
        handle = int(getattr(proc, "_handle"))  # noqa: B009 - Popen's process handle, Windows only
        if not _kernel32().AssignProcessToJobObject(_job, handle):
            raise OSError(_last_error(), "AssignProcessToJobObject failed")
    except OSError as exc:  # pragma: no cover - Windows only
        log.warning("cannot tie rclone (pid %s) to this process; it may outlive a crash: %s", proc.pid, exc)


def _kill_on_close_job() -> int:  # pragma: no cover - Windows only
    from ctypes import wintypes

    class BasicLimits(ctypes.Structure):
        _fields_ = [
            ("PerProcessUserTimeLimit", ctypes.c_int64),
            ("PerJobUserTimeLimit", ctypes.c_int64),
            ("LimitFlags", wintypes.DWORD),
            ("MinimumWorkingSetSize", ctypes.c_size_t),
            ("MaximumWorkingSetSize", ctypes.c_size_t),
            ("ActiveProcessLimit", wintypes.DWORD),
            ("Affinity", ctypes.c_size_t),
            ("PriorityClass", wintypes.DWORD),
            ("SchedulingClass", wintypes.DWORD),
        ]

    class IoCounters(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint64) for n in ("r", "w", "o", "rb", "wb", "ob")]

    class ExtendedLimits(ctypes.Structure):
        _fields_ = [
            ("BasicLimitInformation", BasicLimits),
            ("IoInfo", IoCounters),
            ("ProcessMemoryLimit", ctypes.c_size_t),
            ("JobMemoryLimit", ctypes.c_size_t),
            ("PeakProcessMemoryUsed", ctypes.c_size_t),
            ("PeakJobMemoryUsed", ctypes.c_size_t),
        ]

    kernel32 = _kernel32()
    kernel32.CreateJobObjectW.restype = wintypes.HANDLE
    job = kernel32.CreateJobObjectW(None, None)
    if not job:
        raise OSError(_last_error(), "CreateJobObjectW failed")
    info = ExtendedLimits()
    info.BasicLimitInformation.LimitFlags = 0x2000  # JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    if not kernel32.SetInformationJobObject(job, 9, ctypes.byref(info), ctypes.sizeof(info)):
        raise OSError(_last_error(), "SetInformationJobObject failed")
    return int(job)


def _kernel32() -> Any:  # pragma: no cover - Windows only
    return getattr(ctypes, "WinDLL")("kernel32", use_last_error=True)  # noqa: B009 - absent on POSIX


def _last_error() -> int:  # pragma: no cover - Windows only
    return int(getattr(ctypes, "get_last_error")())  # noqa: B009 - absent on POSIX
