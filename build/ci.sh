#!/usr/bin/env bash
# The packaging part of CI (tests/run.sh calls it before the test suite): the Linux frozen app (build, smoke test
# with a bare PATH, .tar.gz) and Windows under Wine (the Windows test subset, frozen build, smoke test, the frozen
# tray's end-to-end test, installer compiled, installed, uninstalled). Prints the time each part took.
#
#   DU_CI_PACKAGING=0   skip all of it          DU_CI_LINUX_APP=0 / DU_CI_WINE=0   skip one part
#   DU_WINE_TESTS=...   the tests run under Wine (default: build/windows-under-wine.sh's subset; "all" = suite)
#   DU_WINE_TRAY_E2E=0  leave out the frozen Windows tray's end-to-end test (run by default)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ "${DU_CI_PACKAGING:-1}" = 0 ] && { echo "packaging: skipped (DU_CI_PACKAGING=0)"; exit 0; }
times=()
t0=$SECONDS
if [ "${DU_CI_LINUX_APP:-1}" != 0 ]; then
  t=$SECONDS
  bash "$REPO/build/linux.sh" all
  times+=("linux app (build+smoke+tar.gz) $((SECONDS - t)) s")
fi
if [ "${DU_CI_WINE:-1}" != 0 ]; then
  t=$SECONDS
  # CI compresses the installer with zlib (seconds) instead of the release's solid LZMA (minutes).
  DU_NSIS_COMPRESSOR=${DU_NSIS_COMPRESSOR:-zlib} bash "$REPO/build/windows-under-wine.sh" all
  times+=("windows under wine (tests+freeze+smoke+tray e2e+installer) $((SECONDS - t)) s")
fi
echo "packaging times: ${times[*]:-none}; total $((SECONDS - t0)) s"
