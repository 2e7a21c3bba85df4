"""Choosing pystray's backend, and refusing the one without a menu.

pystray picks its backend when it is first imported (``PYSTRAY_BACKEND``, else appindicator → gtk → xorg on
Linux) and falls back to ``xorg`` silently when GTK cannot start. The xorg backend has no menu at all, and the
tray is nothing but its menu, so that fallback is refused with one line saying what to install, unless
``PYSTRAY_BACKEND=xorg`` asked for it.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "no usable tray backend: GTK 3 could not be loaded, so pystray fell back to its xorg backend, which has no "
    "menu. Install GTK and its Python bindings (Debian/Ubuntu: apt install gir1.2-gtk-3.0 "
    "gir1.2-ayatanaappindicator3-0.1, then pip install 'datauploader[desktop]'), or set PYSTRAY_BACKEND=xorg "
    "to run without a menu"
)


class BackendError(Exception):
    pass


def backend_name(pystray: ModuleType) -> str:
    """``gtk``, ``appindicator``, ``win32``, ``darwin``, ``xorg`` or ``dummy``."""
    return str(pystray.Icon.__module__).rsplit("._", 1)[-1]


def load_pystray() -> tuple[ModuleType, str]:
    explicit = os.environ.get("PYSTRAY_BACKEND", "")
    try:
        import pystray
    except Exception as exc:  # no display, or an unknown PYSTRAY_BACKEND
        raise BackendError(f"cannot start the tray icon: {exc}") from None
    name = backend_name(pystray)
    log.info("tray backend: %s%s", name, " (chosen by PYSTRAY_BACKEND)" if explicit else "")
    if name == "xorg" and explicit != "xorg":
        raise BackendError(INSTALL_HINT)
    return pystray, name
