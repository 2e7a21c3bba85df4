#!/bin/sh
# Installs the unpacked DataUploader for the current user (no root):
#   ./install.sh --user        the app in ~/.local/opt/datauploader, `datauploader` in ~/.local/bin,
#                              a menu entry and its icon
#   ./install.sh --uninstall   removes exactly those; your journal, config and logs (~/.local/share/datauploader,
#                              ~/.config/datauploader, ~/.local/state/datauploader) are kept
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
opt="$HOME/.local/opt/datauploader"
bin="$HOME/.local/bin"
apps="$data/applications"
icon="$data/icons/hicolor/256x256/apps"

case "${1:-}" in
  --user)
    mkdir -p "$opt" "$bin" "$apps" "$icon"
    rm -rf "$opt.new" && cp -a "$here/datauploader" "$opt.new"   # replace the old version whole
    rm -rf "$opt" && mv "$opt.new" "$opt"
    ln -sf "$opt/datauploader" "$bin/datauploader"
    cp "$here/datauploader.png" "$icon/datauploader.png"
    sed "s|^Exec=datauploader |Exec=\"$opt/datauploader\" |" "$here/datauploader.desktop" >"$apps/datauploader.desktop"
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" || true
    echo "installed: $opt (command: $bin/datauploader, menu entry: DataUploader)"
    case ":$PATH:" in *":$bin:"*) ;; *) echo "note: add $bin to your PATH to type 'datauploader'";; esac
    echo "start the tray at login with: datauploader autostart on"
    ;;
  --uninstall)
    "$opt/datauploader" autostart off >/dev/null 2>&1 || true
    rm -rf "$opt"
    [ -L "$bin/datauploader" ] && rm -f "$bin/datauploader"
    rm -f "$apps/datauploader.desktop" "$icon/datauploader.png"
    echo "removed DataUploader; kept your journal, config and logs"
    ;;
  *)
    echo "usage: $0 --user | --uninstall" >&2
    exit 2
    ;;
esac
