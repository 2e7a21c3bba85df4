#!/usr/bin/env bash
# Installs everything the tests need (system packages when run as root, a venv with the project and its test
# extras) and runs linters and the test suite. CI runs exactly this (.ci/run); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=$(grep -v '^#' tests/apt-packages.txt | xargs || true)
if [ -n "$apt_packages" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  if ! dpkg -s $apt_packages >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $apt_packages >/dev/null
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,desktop]'
.venv/bin/ruff check engine tray tests
.venv/bin/mypy
# A full run (no pytest arguments: what CI does) also builds and smoke-tests the frozen apps, Linux and Windows
# under Wine (build/ci.sh; DU_CI_PACKAGING=0 skips it, DU_WINE_TESTS selects the Wine test subset).
if [ $# -eq 0 ]; then bash build/ci.sh; fi
exec .venv/bin/python -m pytest -q "$@"
