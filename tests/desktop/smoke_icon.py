"""A throwaway pystray icon (red square) that proves the desktop harness: menu "Alpha", "Notify me", "Quit"."""

from __future__ import annotations

import sys

import pystray
from PIL import Image, ImageDraw


def main() -> int:
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle((4, 4, 60, 60), fill=(200, 30, 30, 255))

    def notify(icon: pystray.Icon, _item: object) -> None:
        icon.notify("smoke body", "smoke-notification")

    icon = pystray.Icon(
        "smoke",
        img,
        "smoke icon",
        menu=pystray.Menu(
            pystray.MenuItem("Alpha", lambda: None),
            pystray.MenuItem("Notify me", notify),
            pystray.MenuItem("Quit", lambda icon, _item: icon.stop()),
        ),
    )
    print("backend", type(icon).__module__, flush=True)
    icon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
