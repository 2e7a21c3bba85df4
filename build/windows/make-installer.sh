#!/usr/bin/env bash
# Compiles the Windows installer with makensis (Debian's `nsis` package, or NSIS on Windows).
#   build/windows/make-installer.sh APPDIR OUTDIR
# APPDIR is the frozen one-folder app (build/windows-under-wine.sh freeze, or `pyinstaller tray.spec` on Windows).
# When APPDIR holds no DataUploaderTray.exe (a Linux CI run without the Windows build) a placeholder payload is used,
# so the script itself is still compiled and checked; the result is then named *-placeholder-setup.exe.
# DU_NSIS_COMPRESSOR=zlib compresses fast (CI); the default is solid LZMA (release).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
APPDIR=${1:?usage: make-installer.sh APPDIR OUTDIR}
OUTDIR=${2:?usage: make-installer.sh APPDIR OUTDIR}
PYTHON=${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python3 )}
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REPO/engine/version.py")
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
name="DataUploader-$VERSION-setup.exe"
if [ ! -f "$APPDIR/DataUploaderTray.exe" ]; then
  echo "make-installer: no Windows build in $APPDIR: compiling around a placeholder payload" >&2
  APPDIR="$tmp/placeholder"
  mkdir -p "$APPDIR/_internal"
  for f in DataUploaderTray.exe datauploader.exe _internal/placeholder.txt; do
    echo "placeholder: not a Windows build" >"$APPDIR/$f"
  done
  name="DataUploader-$VERSION-placeholder-setup.exe"
fi
APPDIR=$(cd "$APPDIR" && pwd)
ICON=$("$PYTHON" "$REPO/build/app_icon.py" "$tmp/icon" | grep '\.ico$')
makensis -V2 ${DU_NSIS_COMPRESSOR:+-DCOMPRESSOR="$DU_NSIS_COMPRESSOR"} -DVERSION="$VERSION" -DAPPDIR="$APPDIR" -DICON="$ICON" -DOUTFILE="$OUTDIR/$name" \
  "$REPO/build/windows/installer.nsi"
echo "$OUTDIR/$name ($(du -h "$OUTDIR/$name" | cut -f1))"
