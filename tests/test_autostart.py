"""Start at login: the XDG autostart entry (real files), the Windows Run key (in-memory on Linux, the real registry
under Windows / Wine), and the `datauploader autostart` command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.autostart import (
    RUN_KEY_PATH,
    RegistryAutostart,
    WinregRunKey,
    XdgAutostart,
    desktop_exec,
    launch_command,
)
from tests.conftest import Cli


class MemoryRunKey:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.values.pop(name, None)


def _unescape_desktop_exec(value: str) -> list[str]:
    """Undo desktop_exec as a desktop does: string-value escapes, then the Exec quoting rules, then ``%%``."""
    text = value.replace("\\\\", "\\")
    words: list[str] = []
    word, quoted, i, started = "", False, 0, False
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
            word += text[i + 1]
            i += 2
            continue
        if ch == '"':
            quoted, started = not quoted, True
        elif ch == " " and not quoted:
            if started:
                words.append(word)
            word, started = "", False
        else:
            word, started = word + ch, True
        i += 1
    if started:
        words.append(word)
    return [w.replace("%%", "%") for w in words]


@pytest.mark.parametrize(
    "argv",
    [
        ["/opt/datauploader/datauploader", "tray"],
        ["/home/a b/My Apps/datauploader", "tray"],
        ["/x/py$thon", "-m", "engine", "tray"],
        ['/x/"quoted"/back\\slash', "100%"],
    ],
)
def test_desktop_exec_round_trips(argv: list[str]) -> None:
    assert _unescape_desktop_exec(desktop_exec(argv)) == argv


def test_xdg_on_off_status(tmp_path: Path) -> None:
    xdg = XdgAutostart(tmp_path / "config")
    assert not xdg.status().enabled
    st = xdg.enable(["/opt/du/datauploader", "tray"])
    assert st.enabled and st.command == "/opt/du/datauploader tray"
    entry = tmp_path / "config" / "autostart" / "datauploader-tray.desktop"
    assert st.where == str(entry)
    text = entry.read_text()
    assert text.startswith("[Desktop Entry]\n") and "Type=Application\n" in text
    assert "Exec=/opt/du/datauploader tray\n" in text
    # Twice on is still one entry; off removes it; off again is fine.
    xdg.enable(["/opt/du/datauploader", "tray"])
    assert list(entry.parent.iterdir()) == [entry]
    assert not xdg.disable().enabled and not entry.exists()
    assert not xdg.disable().enabled


def test_xdg_entry_switched_off_by_the_desktop_counts_as_off(tmp_path: Path) -> None:
    xdg = XdgAutostart(tmp_path)
    xdg.enable(["du", "tray"])
    xdg.path.write_text(xdg.path.read_text().replace("X-GNOME-Autostart-enabled=true", "Hidden=true"))
    assert not xdg.status().enabled


def test_registry_on_off_status() -> None:
    key = MemoryRunKey()
    reg = RegistryAutostart(key)
    assert not reg.status().enabled
    st = reg.enable(["C:\\Program Files\\DataUploader\\DataUploaderTray.exe"])
    assert st.enabled
    assert key.values == {"DataUploader": '"C:\\Program Files\\DataUploader\\DataUploaderTray.exe"'}
    assert st.where == f"HKEY_CURRENT_USER\\{RUN_KEY_PATH}\\DataUploader"
    assert not reg.disable().enabled and key.values == {}
    assert not reg.disable().enabled


@pytest.mark.skipif(
    sys.platform != "win32", reason="the real registry exists only on Windows (and under Wine)"
)
def test_registry_for_real() -> None:
    key = WinregRunKey("Software\\DataUploaderTest")  # a scratch key, not the live Run key
    reg = RegistryAutostart(key)
    try:
        st = reg.enable(["C:\\Program Files\\DataUploader\\DataUploaderTray.exe", "--x"])
        assert st.enabled and st.command == '"C:\\Program Files\\DataUploader\\DataUploaderTray.exe" --x'
        assert key.get("DataUploader") == st.command
        assert not reg.disable().enabled
        assert key.get("DataUploader") is None
    finally:
        key.delete("DataUploader")


def test_launch_command_from_python() -> None:
    argv = launch_command()
    assert argv[1:] == ["-m", "engine", "tray"]
    assert Path(argv[0]).parent == Path(sys.executable).parent


@pytest.mark.posix_only(reason="the command switches the XDG entry there; Windows: test_registry_for_real")
def test_cli_autostart(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    entry = tmp_path / "xdg" / "autostart" / "datauploader-tray.desktop"
    r = cli("autostart", "status")
    assert r.code == 0 and r.out.startswith("start at login: off"), r
    r = cli("autostart", "on")
    assert r.code == 0 and r.out.startswith("start at login: on"), r
    assert "-m engine tray" in r.out
    assert entry.is_file()
    assert cli("autostart", "status").out.startswith("start at login: on")
    r = cli("autostart", "off")
    assert r.code == 0 and r.out.startswith("start at login: off")
    assert not entry.exists()
    assert cli("autostart", "bogus").code == 2
