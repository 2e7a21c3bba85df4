"""Include/exclude patterns: the fast matcher for name-only patterns gives pathspec's answers, always."""

from __future__ import annotations

import itertools

import pathspec
import pytest

from engine.rules import DEFAULT_EXCLUDES, FileRules, matcher

NAMES = [
    "a.tmp",
    "a.tmp.dat",
    ".tmp",
    "tmp",
    "x.part",
    "~$report.docx",
    "$~x",
    ".~lock.data.csv#",
    "Thumbs.db",
    "thumbs.db",
    "Thumbs.dbx",
    ".DS_Store",
    "scan_001.raw",
    "scan_0001.raw",
    "scan_01.raw",
    "log.1",
    "a b.tmp",
    "ü.tmp",
    "a.dat",
    "weird[1].log",
    "#notes",
]
PATHS = [
    "/".join(parts)
    for n in (1, 2, 3)
    for parts in itertools.product(["a.dat", "sub", "b.tmp", "Thumbs.db"], repeat=n - 1)
    for parts in [(*parts, name) for name in NAMES]
]

PATTERN_SETS = [
    list(DEFAULT_EXCLUDES),
    ["*.log", "scan_??.raw", "log.?"],
    ["*"],
    ["sub"],
    ["*.db", "a.dat"],
    # richer patterns take pathspec's own road; the answers must still agree
    ["sub/", "/a.dat", "!b.tmp", "**/x.part", "weird[1].log", "# comment", "a b.tmp", "*.tmp "],
]


@pytest.mark.parametrize("patterns", PATTERN_SETS, ids=lambda p: ",".join(p))
def test_matcher_agrees_with_pathspec(patterns: list[str]) -> None:
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    match = matcher(patterns)
    wrong = [p for p in PATHS if match(p) != spec.match_file(p)]
    assert len(PATHS) > 300 and not wrong, wrong[:10]


def test_name_only_patterns_do_not_need_pathspec() -> None:
    assert not isinstance(getattr(matcher(DEFAULT_EXCLUDES), "__self__", None), pathspec.PathSpec)
    assert isinstance(getattr(matcher(["logs/"]), "__self__", None), pathspec.PathSpec)


def test_default_excludes_skip_temporary_files_at_any_depth() -> None:
    rules = FileRules()
    assert not rules.wanted("run/a.tmp") and not rules.wanted("~$x.docx") and not rules.wanted("b.tmp/c.dat")
    assert rules.wanted("run/a.dat") and rules.wanted("thumbs.db")
    assert FileRules(default_excludes=False).wanted("a.tmp")
    h5 = FileRules(include=["*.h5"])
    assert h5.wanted("run/scan.h5") and not h5.wanted("x.dat")
