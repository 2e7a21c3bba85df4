"""Turning the PATH arguments of ``upload``/``sync`` into dataset-relative files.

A folder argument contributes its contents (paths relative to the folder); a file argument lands at the dataset
root under its own name. Two arguments that claim the same relative path are a usage error found before anything
moves, because silently letting one win would lose the other's data on storage.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UsageError
from engine.names import RESERVED_FILES
from engine.rules import FileRules


@dataclass(frozen=True)
class SourceRoot:
    """One PATH argument. ``files_only`` names a single file whose root is its parent folder."""

    root: Path
    single: str | None = None

    @property
    def label(self) -> str:
        return str(self.root / self.single) if self.single else str(self.root)


@dataclass(frozen=True)
class SourceFile:
    """A file found at the source: where it is, where it goes, and what it looked like when seen."""

    root_index: int
    rel: str
    size: int
    mtime_ns: int

    def path(self, roots: Sequence[SourceRoot]) -> Path:
        return roots[self.root_index].root / self.rel


def resolve_roots(paths: Sequence[str]) -> list[SourceRoot]:
    """Check every PATH exists and classify it; raise :class:`UsageError` naming the first bad one."""
    if not paths:
        raise UsageError("no PATH given; name the files or folders to upload")
    roots: list[SourceRoot] = []
    for raw in paths:
        p = Path(raw).expanduser()
        try:
            st = p.stat()
        except FileNotFoundError:
            raise UsageError(f"{raw}: no such file or folder; check the path") from None
        except OSError as exc:
            raise UsageError(f"{raw}: cannot read it ({exc.strerror})") from None
        p = p.resolve()
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
        self, root: Path, *, full: bool = True, prefix: str = ""
    ) -> Iterator[tuple[str, os.stat_result]]:
        """Regular files below ``root`` (``/``-separated relative paths) in listed folders; ``full`` lists all.
        Symlinks to files are followed; symlinked folders are not, so a link loop cannot make the walk endless."""
        key = str(root)
        try:
            dir_mtime = os.stat(
                root
            ).st_mtime_ns  # before listing: a change during the listing shows next time
        except OSError:
            self._dirs.pop(key, None)
            if not prefix:
                raise UsageError(f"{root}: cannot read folder") from None
            return
        cached = self._dirs.get(key)
        if not full and cached is not None and cached[0] == dir_mtime:
            for name in cached[1]:
                yield from self.walk(root / name, full=False, prefix=f"{prefix}{name}/")
            return
        try:
            it = os.scandir(root)
        except OSError as exc:
            if not prefix:
                raise UsageError(f"{root}: cannot list folder ({exc.strerror})") from None
            return
        subdirs: list[str] = []
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.name)
                        continue
                    st = entry.stat(follow_symlinks=True)
                except OSError:
                    continue  # vanished while we looked; a later scan sees it if it comes back
                if stat.S_ISREG(st.st_mode):
                    yield f"{prefix}{entry.name}", st
        subdirs.sort()
        self._dirs[key] = (dir_mtime, tuple(subdirs))
        for name in subdirs:
            yield from self.walk(root / name, full=full, prefix=f"{prefix}{name}/")


def scan(
    roots: Sequence[SourceRoot],
    rules: FileRules | None = None,
    *,
    folders: FolderIndex | None = None,
    full: bool = True,
) -> Iterator[SourceFile]:
    """Every wanted file of every root, in a stable order. Collisions between roots raise :class:`UsageError`
    (tracked only with several roots: one folder cannot collide with itself, so a huge tree costs no memory).
    With ``folders`` (sync mode's index) and ``full=False``, only files in folders changed since the last walk."""
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
            items = walker.walk(root.root, full=full)
        for rel, st in items:
            if rules is not None and not rules.wanted(rel):
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
