"""Windows naming and long-path rules, tested as pure functions on every OS (PureWindowsPath, no Windows needed)."""

from __future__ import annotations

from pathlib import PureWindowsPath

import pytest

from engine.winpaths import (
    LONG_PATH_THRESHOLD,
    MAX_PATH,
    is_windows_like,
    long_path,
    name_problem,
    needs_long_prefix,
    path_too_long,
    relative_path_problem,
)


@pytest.mark.parametrize(
    "name",
    [
        "scan_001.h5",
        "a b.txt",
        "naïve Ω.dat",
        ".hidden",
        "CONSOLE.txt",
        "COM10",
        "LPT",
        "con_1.txt",
        "x" * 255,
    ],
)
def test_names_windows_stores(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("a:b.txt", "contains ':'"),
        ("what?.dat", "contains '?'"),
        ("star*.h5", "contains '*'"),
        ('say"hi".txt', "contains '\"'"),
        ("a<b", "contains '<'"),
        ("a>b", "contains '>'"),
        ("a|b", "contains '|'"),
        ("back\\slash", "contains '\\\\'"),
        ("tab\there", "U+0009"),
        ("nul\x00byte", "U+0000"),
        ("trailing.", "ends with a dot"),
        ("trailing ", "ends with a space"),
        ("CON", "CON is a reserved device name"),
        ("con.txt", "CON is a reserved device name"),
        ("Nul.tar.gz", "NUL is a reserved device name"),
        ("aux", "AUX is a reserved device name"),
        ("PRN .log", "PRN is a reserved device name"),
        ("COM1", "COM1 is a reserved device name"),
        ("com9.bin", "COM9 is a reserved device name"),
        ("LPT1", "LPT1 is a reserved device name"),
        ("COM¹", "COM¹ is a reserved device name"),
        ("CONIN$", "CONIN$ is a reserved device name"),
        ("x" * 256, "at most 255"),
        ("", "not a usable file name"),
        ("..", "not a usable file name"),
    ],
)
def test_names_windows_refuses_with_a_reason(name: str, says: str) -> None:
    why = name_problem(name)
    assert why is not None and says in why
    assert "\n" not in why


def test_relative_path_names_the_component_at_fault() -> None:
    assert relative_path_problem("raw/scan_001.h5") is None
    why = relative_path_problem("raw/aux.h5")
    assert why == "'raw/aux.h5': 'aux.h5' AUX is a reserved device name on Windows (with any extension)"
    why = relative_path_problem("run 5./data.h5")
    assert why is not None and why.startswith("'run 5./data.h5': 'run 5.' ends with a dot")
    assert relative_path_problem("a?.txt") == "'a?.txt' contains '?', which Windows does not allow in names"


def test_short_paths_are_only_normalised() -> None:
    assert long_path("C:/data/raw/../scan/x.h5") == "C:\\data\\scan\\x.h5"
    assert long_path(PureWindowsPath("D:\\a\\.\\b")) == "D:\\a\\b"
    assert not needs_long_prefix("C:\\data\\x.h5")


def test_long_local_path_gets_the_prefix() -> None:
    deep = "C:\\data\\" + "\\".join([f"folder_{i:02d}" for i in range(30)]) + "\\file.h5"
    assert len(deep) > MAX_PATH
    got = long_path(deep)
    assert got == "\\\\?\\" + deep
    assert PureWindowsPath(got).name == "file.h5"
    assert long_path(got) == got  # idempotent


def test_long_path_threshold_covers_folders() -> None:
    # A folder path must leave room for an 8.3 name: 248 characters already need the prefix.
    base = "C:\\" + "a" * (LONG_PATH_THRESHOLD - 3)
    assert len(base) == LONG_PATH_THRESHOLD
    assert long_path(base).startswith("\\\\?\\C:\\")
    assert long_path(base[:-1]) == base[:-1]


def test_long_unc_path_uses_the_unc_form() -> None:
    deep = "\\\\fileserver\\beamline\\" + "d" * 250 + "\\x.h5"
    assert long_path(deep) == "\\\\?\\UNC\\fileserver\\beamline\\" + "d" * 250 + "\\x.h5"


def test_long_path_wants_an_absolute_path() -> None:
    with pytest.raises(ValueError, match="not an absolute Windows path"):
        long_path("data\\x.h5")
    with pytest.raises(ValueError):
        long_path("\\no-drive\\x.h5")


def test_path_too_long_for_storage_without_long_paths() -> None:
    assert path_too_long("\\\\srv\\share\\" + "x" * 200) is None
    why = path_too_long("\\\\srv\\share\\" + "x" * 300)
    assert why is not None and "259" in why


@pytest.mark.parametrize(
    ("storage", "on_windows", "expected"),
    [
        ("C:\\data\\raw", False, True),
        ("\\\\fileserver\\beamline", False, True),
        (":smb,host=fs:share/raw", False, True),
        ("/srv/raw", False, False),
        ("/srv/raw", True, True),
        ("relative/raw", True, True),
        ("facility:raw", True, False),
        (":webdav,url='http://x':base", True, False),
        ("s3remote:bucket", False, False),
    ],
)
def test_windows_like_storage(storage: str, on_windows: bool, expected: bool) -> None:
    assert is_windows_like(storage, on_windows=on_windows) is expected


def test_named_smb_remote_is_windows_like() -> None:
    assert is_windows_like("nas:raw", on_windows=False, backend="smb")
