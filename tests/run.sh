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
exec .venv/bin/python -m pytest -q "$@"
