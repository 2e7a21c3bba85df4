"""Is another process still writing this file? The strongest completeness signal sync mode has.

An instrument may pause longer than any settle time with a file open (between frames, during a long exposure),
and after a restart the inotify close-after-write evidence of the previous run is gone, so neither a timer nor
events can be trusted alone. The operating system knows who has a file open:

- Linux: ``/proc/<pid>/fd/*`` link to the open files and ``/proc/<pid>/fdinfo/*`` hold the open flags. One walk
  over the processes answers for a whole batch of candidate files (a few milliseconds for thousands of open
  files), and only candidates — files that already look complete — are ever asked about.
- Windows: opening the file with no sharing fails while anyone else has it open (writers included).

Processes of other users are invisible to a non-root user on Linux; if the instrument runs as another user the
settle time and close events remain the evidence (documented in the README).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

_ACCESS_MODE = 0o3  # O_ACCMODE; O_WRONLY = 1, O_RDWR = 2


def busy_files(paths: Iterable[str]) -> set[str]:
    """The subset of ``paths`` that some other process holds open for writing (Windows: open at all)."""
    wanted = list(paths)
    if not wanted:
        return set()
    if sys.platform.startswith("linux"):
        return _linux_writers(wanted)
    if os.name == "nt":  # pragma: no cover - Windows
        return {p for p in wanted if not _exclusive_open(p)}
    return set()


def _linux_writers(paths: list[str]) -> set[str]:
    targets: dict[str, str] = {}
    for p in paths:
        try:
            targets[os.path.realpath(p)] = p
        except OSError:
            continue
    me = str(os.getpid())
    busy: set[str] = set()
    try:
        procs = os.scandir("/proc")
    except OSError:
        return busy
    with procs:
        for proc in procs:
            if not proc.name.isdigit() or proc.name == me:
                continue
            fd_dir = f"/proc/{proc.name}/fd"
            try:
                fds = os.listdir(fd_dir)
            except OSError:  # gone, or another user's process
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                original = targets.get(target)
                if original is None or original in busy:
                    continue
                if _opened_for_writing(f"/proc/{proc.name}/fdinfo/{fd}"):
                    busy.add(original)
    return busy


def _opened_for_writing(fdinfo: str) -> bool:
    try:
        with open(fdinfo, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & _ACCESS_MODE != 0
    except (OSError, ValueError):
        return False
    return False


def _exclusive_open(path: str) -> bool:  # pragma: no cover - Windows only
    """Can we open the file with no sharing at all? That fails (sharing violation) while any other process has
    it open. ``os.open`` cannot ask for this: the C runtime always opens with sharing allowed."""
    import ctypes
    from ctypes import wintypes

    kernel32 = getattr(ctypes, "WinDLL")("kernel32", use_last_error=True)  # noqa: B009 - absent on POSIX
    kernel32.CreateFileW.restype = wintypes.HANDLE
    kernel32.CreateFileW.argtypes = [
        wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID,
        wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE,
    ]  # fmt: skip
    generic_read, open_existing, no_sharing = 0x80000000, 3, 0
    handle = kernel32.CreateFileW(path, generic_read, no_sharing, None, open_existing, 0, None)
    if handle in (None, wintypes.HANDLE(-1).value):
        error = int(getattr(ctypes, "get_last_error")())  # noqa: B009
        return error not in (32, 33)  # ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION: someone has it open
    kernel32.CloseHandle(handle)
    return True
