"""What Windows can and cannot store, as pure functions usable on any OS.

A scientist's files often come from a Linux acquisition PC and go to a Windows share (or the other way round), and
the uploader runs on Windows too. A name Windows cannot store fails deep inside rclone or the OS with a cryptic
error, and a path past the old 260-character limit fails only on the machines where long paths are not enabled;
checking up front gives the scientist one clear line instead. Everything here works on strings and
``PureWindowsPath`` so it is tested on Linux exactly as it behaves on Windows.
"""

from __future__ import annotations

import ntpath
import os
import re
import sys
from pathlib import PureWindowsPath

# Win32 APIs without the \\?\ prefix fail at MAX_PATH (260 including the terminating NUL); creating a folder
# fails 12 characters earlier (room for an 8.3 file name inside it). Past this length a path gets the prefix.
MAX_PATH = 260
LONG_PATH_THRESHOLD = MAX_PATH - 12
MAX_NAME = 255  # characters in one path component (NTFS, exFAT, SMB)

FORBIDDEN_CHARS = '<>:"|?*'
_CONTROL = re.compile(r"[\x00-\x1f]")
_DEVICE_BASES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
_DEVICE_BASES |= {f"{dev}{n}" for dev in ("COM", "LPT") for n in [*"0123456789", "¹", "²", "³"]}


def name_problem(name: str) -> str | None:
    """Why Windows cannot store a file or folder called ``name`` (one component, no separators), or None.

    The reason is one short clause meant to follow the name in a message, e.g. ``'a:b.txt': contains ':'``.
    """
    if name in ("", ".", ".."):
        return "is not a usable file name"
    for ch in name:
        if ch in FORBIDDEN_CHARS or ch in "/\\":
            return f"contains {ch!r}, which Windows does not allow in names"
    ctrl = _CONTROL.search(name)
    if ctrl:
        return f"contains the control character U+{ord(ctrl.group()):04X}, which Windows does not allow"
    if name[-1] in ". ":
        what = "a dot" if name[-1] == "." else "a space"
        return f"ends with {what}, which Windows silently drops (the file would get another name)"
    base = name.split(".", 1)[0].rstrip(" ").upper()
    if base in _DEVICE_BASES:
        return f"{base} is a reserved device name on Windows (with any extension)"
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; Windows allows at most {MAX_NAME} per name"
    return None


def relative_path_problem(rel: str) -> str | None:
    """Why Windows cannot store the relative path ``rel`` (``/``-separated, as the journal keeps it), or None.

    The message names the offending component when the path has several: ``'raw/aux.h5': 'aux.h5' — AUX is …``.
    """
    parts = rel.split("/")
    for part in parts:
        why = name_problem(part)
        if why:
            where = f"{rel!r}" if len(parts) == 1 else f"{rel!r}: {part!r}"
            return f"{where} {why}"
    return None


def needs_long_prefix(path: str | PureWindowsPath) -> bool:
    """True when ``path`` is too long for Win32 calls without the ``\\\\?\\`` prefix (files or folders)."""
    text = str(path)
    return len(text) >= LONG_PATH_THRESHOLD and not text.startswith("\\\\?\\")


def long_path(path: str | PureWindowsPath) -> str:
    """``path`` in the form Win32 accepts past 260 characters: ``\\\\?\\C:\\…`` or ``\\\\?\\UNC\\server\\share\\…``.

    Short paths come back unchanged (normalised), so callers may apply this to every path they open. The prefix
    switches off Win32's own path clean-up, so the path is made absolute-only, backslashed and free of ``.`` and
    ``..`` here; a relative path is refused (resolve it against the working folder first).
    """
    text = str(path)
    if text.startswith("\\\\?\\"):
        return text
    win = PureWindowsPath(text)
    if not (win.drive and win.root):
        raise ValueError(f"not an absolute Windows path: {text!r}")
    normal = ntpath.normpath(str(win))
    if not needs_long_prefix(normal):
        return normal
    if normal.startswith("\\\\"):  # \\server\share\... -> \\?\UNC\server\share\...
        return "\\\\?\\UNC\\" + normal[2:]
    return "\\\\?\\" + normal


def native(path: str | os.PathLike[str]) -> str:
    """The path to hand the operating system: on Windows past 260 characters the ``\\\\?\\`` form (so an
    instrument's deep folders can be read), elsewhere unchanged."""
    text = os.fspath(path)
    if sys.platform == "win32" and needs_long_prefix(text):  # pragma: no cover - Windows
        return long_path(text)
    return text


def path_too_long(path: str | PureWindowsPath) -> str | None:
    """A one-line reason when ``path`` exceeds MAX_PATH, for storage that cannot take the ``\\\\?\\`` form
    (an SMB share mounted by a Windows host without long paths enabled), else None."""
    n = len(str(path))
    if n >= MAX_PATH:
        return f"path is {n} characters long; Windows without long-path support allows {MAX_PATH - 1}"
    return None


def is_windows_like(storage: str, *, on_windows: bool, backend: str | None = None) -> bool:
    """Whether files written to ``storage`` (a profile's ``storage`` value) end up under Windows' name rules.

    True for rclone's SMB backend (``:smb…``, or ``backend="smb"`` when the caller resolved a named remote's
    type), for a Windows path (``C:\\…``, ``\\\\server\\share``) wherever the config was written, and for any
    local folder when running on Windows; object stores, WebDAV and SFTP servers keep any name.
    """
    s = storage.strip()
    if (backend or "").lower() == "smb" or s.lower().startswith(":smb"):
        return True
    if re.match(r"^[A-Za-z]:[\\/]", s) or s.startswith("\\\\"):
        return True
    head, sep, _ = s.partition(":")
    is_remote = s.startswith(":") or (bool(sep) and len(head) > 1 and "/" not in head and "\\" not in head)
    return on_windows and not is_remote
