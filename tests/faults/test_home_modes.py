"""Files under the data home hold file names, dataset metadata and (for SciCat) tokens: only their owner may
read them. The home folder is 0700, the journal, catalogue and log files 0600, whatever the umask (issue 9,
defect 13)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, write_tree


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_home_and_state_files_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    src = write_tree(tmp_path / "src", {"a.dat": b"a"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAUPLOADER_")}
    env["DATAUPLOADER_HOME"] = str(home)
    p = subprocess.run(
        [sys.executable, "-m", "engine", "-v", "upload", str(src), "--dataset", "d"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        umask=0o022,
    )
    assert p.returncode == 0, p.stderr
    state = [
        f
        for pattern in ("journal.sqlite*", "catalogue.sqlite*", "logs/*")
        for f in home.glob(pattern)
        if f.is_file()
    ]
    assert any(f.name == "journal.sqlite" for f in state) and any(f.parent.name == "logs" for f in state)
    modes = {str(f.relative_to(home)): oct(_mode(f)) for f in state}
    assert oct(_mode(home)) == "0o700", f"home folder is {oct(_mode(home))}"
    assert all(m == "0o600" for m in modes.values()), modes
