"""Turning the PATH arguments of ``upload``/``sync`` into dataset-relative files.

A folder argument contributes its contents (paths relative to the folder); a file argument lands at the dataset
root under its own name. Two arguments that claim the same relative path are a usage error found before anything
moves, because silently letting one win would lose the other's data on storage.

What is not a plain file is never passed over in silence (the policy, also in the README):

- a symbolic link to a file is followed: the target's content is uploaded under the link's name;
- a symbolic link to a folder is not followed (loops, and trees the user did not mean to include), nor is a
  dangling link or a link loop; FIFOs, sockets and devices are not data: all of these are *skipped* and each is
  listed in the run's summary;
- a file whose name is not valid UTF-8 or contains a control character (newline, tab, CR, ...) is *refused*:
  storage listings encode such names and catalogues cannot represent them, so it fails with a reason (rename it)
  while the rest of the dataset goes on.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UsageError
from engine.names import RESERVED_FILES
from engine.rules import FileRules
from engine.winpaths import native


@dataclass
class SourceRoot:
    """One PATH argument. ``files_only`` names a single file whose root is its parent folder."""

    root: Path
    single: str | None = None

    @property
    def label(self) -> str:
        return str(self.root / self.single) if self.single else str(self.root)


@dataclass
class SourceFile:
    """A file found at the source: where it is, where it goes, and what it looked like when seen."""

    root_index: int
    rel: str
    size: int
    mtime_ns: int

    def path(self, roots: Sequence[SourceRoot]) -> str:
        """The file's path as the journal stores it (joined as text: a Path per file cost more than its stat)."""
        rel = self.rel if os.sep == "/" else self.rel.replace("/", os.sep)
        return os.path.join(roots[self.root_index].root, rel)


@dataclass
class Skipped:
    """An entry at the source that is not uploaded. ``refused``: a data file that could not be taken (the run
    reports it as failed); otherwise not data at all (a FIFO, a link to a folder), reported but not an error."""

    rel: str  # printable: bytes that are not UTF-8 are shown as \xNN
    reason: str
    refused: bool = False


SkipCallback = Callable[[Skipped], None]


def printable(name: str) -> str:
    """A name as a person can read it on one line: undecodable bytes (surrogate-escaped by the OS layer) as
    ``\\xNN`` and control characters as ``\\n``, ``\\t``, ``\\r`` or ``\\xNN``."""
    if name.isprintable():  # the common case, and fast: no control characters and no undecodable bytes
        return name
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    if not any(unicodedata.category(c) == "Cc" for c in text):
        return text
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) == "Cc" else c for c in text
    )


def name_problem(rel: str) -> str | None:
    """Why a dataset-relative path cannot be uploaded as it is, or None."""
    if rel.isprintable():  # no control characters (Cc) and no surrogate escapes (Cs): the fast common case
        return None
    if any("\udc80" <= c <= "\udcff" for c in rel):
        return "the file name is not valid UTF-8, so it cannot be stored and registered as it is; rename the file"
    bad = next((c for c in rel if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        return (
            f"the file name contains a control character ({bad!r}), which storage listings and catalogues cannot "
            "represent; rename the file"
        )
    return None


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def resolve_roots(paths: Sequence[str]) -> list[SourceRoot]:
    """Check every PATH exists and classify it; raise :class:`UsageError` naming the first bad one."""
    if not paths:
        raise UsageError("no PATH given; name the files or folders to upload")
    roots: list[SourceRoot] = []
    seen: dict[Path, str] = {}
    for raw in paths:
        p = Path(raw).expanduser()
        try:
            st = p.stat()
        except FileNotFoundError:
            raise UsageError(f"{raw}: no such file or folder; check the path") from None
        except OSError as exc:
            raise UsageError(f"{raw}: cannot read it ({exc.strerror})") from None
        p = p.resolve()
        if p in seen:
            raise UsageError(f"{raw}: given twice (also as {seen[p]}); give each file or folder once")
        seen[p] = raw
        if name_problem(str(p)):
            raise UsageError(
                f"{printable(raw)}: the path has a name that is not valid UTF-8 or holds a control "
                "character; rename it"
            )
        if stat.S_ISDIR(st.st_mode):
            roots.append(SourceRoot(root=p))
        elif stat.S_ISREG(st.st_mode):
            roots.append(SourceRoot(root=p.parent, single=p.name))
        else:
            raise UsageError(f"{raw}: not a regular file or folder")
    return roots


class FolderIndex:
    """Each folder's mtime and sub-folders as of the last walk, so the next walk lists only the folders whose
    entries changed: a new, removed or renamed entry changes its folder's mtime. Writing into an existing file
    does not, which is why sync mode still lists everything every few rescans. On a tree of 100,000 files in
    10,000 folders this turns a rescan from 100,000 stats into 10,000."""

    def __init__(self) -> None:
        self._dirs: dict[str, tuple[int, tuple[str, ...]]] = {}

    def walk(
        self, root: Path, *, full: bool = True, prefix: str = "", on_skip: SkipCallback | None = None
    ) -> Iterator[tuple[str, os.stat_result]]:
        """Regular files below ``root`` (``/``-separated relative paths) in listed folders; ``full`` lists all.
        Symlinks to files are followed; symlinked folders are not, so a link loop cannot make the walk endless.
        Entries that are not uploaded (see the module docstring) go to ``on_skip``."""
        key = str(root)
        try:
            dir_mtime = os.stat(
                native(root)
            ).st_mtime_ns  # before listing: a change during listing shows next time
        except OSError:
            self._dirs.pop(key, None)
            if not prefix:
                raise UsageError(f"{root}: cannot read folder") from None
            return
        cached = self._dirs.get(key)
        if not full and cached is not None and cached[0] == dir_mtime:
            for name in cached[1]:
                yield from self.walk(root / name, full=False, prefix=f"{prefix}{name}/", on_skip=on_skip)
            return
        try:
            it = os.scandir(native(root))
        except OSError as exc:
            if not prefix:
                raise UsageError(f"{root}: cannot list folder ({exc.strerror})") from None
            return
        subdirs: list[str] = []
        with it:
            for entry in it:
                rel = f"{prefix}{entry.name}"
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.name)
                        continue
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        st = os.stat(native(entry.path))  # follow: a link to a file uploads the file
                except OSError as exc:
                    if entry.is_symlink() and on_skip is not None:
                        why = (
                            "a symbolic link loop" if exc.errno == errno.ELOOP else "a dangling symbolic link"
                        )
                        on_skip(
                            Skipped(rel, f"{why} (to {printable(os.readlink(entry.path))}); not uploaded")
                        )
                    continue  # otherwise vanished while we looked; a later scan sees it if it comes back
                if stat.S_ISREG(st.st_mode):
                    yield rel, st
                elif on_skip is None:
                    continue
                elif stat.S_ISDIR(st.st_mode):
                    on_skip(
                        Skipped(
                            rel,
                            "a symbolic link to a folder is not followed; give the folder itself as "
                            "a PATH to upload it",
                        )
                    )
                else:
                    on_skip(Skipped(rel, f"{_kind(st.st_mode)}, not a file; only regular files are uploaded"))
        subdirs.sort()
        self._dirs[key] = (dir_mtime, tuple(subdirs))
        for name in subdirs:
            yield from self.walk(root / name, full=full, prefix=f"{prefix}{name}/", on_skip=on_skip)


def scan(
    roots: Sequence[SourceRoot],
    rules: FileRules | None = None,
    *,
    folders: FolderIndex | None = None,
    full: bool = True,
    on_skip: SkipCallback | None = None,
    refuse: Callable[[str], str | None] | None = None,
) -> Iterator[SourceFile]:
    """Every wanted file of every root, in a stable order. Collisions between roots raise :class:`UsageError`
    (tracked only with several roots: one folder cannot collide with itself, so a huge tree costs no memory).
    With ``folders`` (sync mode's index) and ``full=False``, only files in folders changed since the last walk.
    Wanted entries that are skipped or refused (module docstring) go to ``on_skip``; ``refuse`` adds the storage's
    own name rules (Windows-like storage cannot take ``a:b`` or ``CON``), returning the reason or None."""

    def skip(entry: Skipped) -> None:
        if on_skip is not None and (rules is None or rules.wanted(entry.rel)):
            on_skip(Skipped(printable(entry.rel), entry.reason, entry.refused))

    seen: dict[str, int] = {}
    walker = folders if folders is not None else FolderIndex()
    track = len(roots) > 1
    for index, root in enumerate(roots):
        if root.single is not None:
            try:
                st = (root.root / root.single).stat()
            except OSError as exc:
                raise UsageError(f"{root.label}: cannot read it ({exc.strerror})") from None
            items: Iterator[tuple[str, os.stat_result]] = iter([(root.single, st)])
        else:
            items = walker.walk(root.root, full=full, on_skip=skip)
        for rel, st in items:
            if rules is not None and not rules.wanted(rel):
                continue
            problem = name_problem(rel) or (refuse(rel) if refuse is not None else None)
            if problem:
                skip(Skipped(rel, problem, refused=True))
                continue
            if rel in RESERVED_FILES:
                raise UsageError(
                    f"{root.root / rel}: '{rel}' at the dataset root is reserved for the dataset manifest; "
                    "rename the file or upload its folder as a sub-folder"
                )
            if track:
                other = seen.get(rel)
                if other is not None and other != index:
                    raise UsageError(
                        f"'{rel}' would come from both {roots[other].label} and {root.label}; "
                        "upload them as separate datasets or rename one"
                    )
                seen[rel] = index
            yield SourceFile(root_index=index, rel=rel, size=st.st_size, mtime_ns=st.st_mtime_ns)
