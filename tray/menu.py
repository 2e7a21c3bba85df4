"""pystray menu items from the tray's :class:`~tray.view.MenuEntry` list.

The menu is rebuilt from whatever list the Tk thread last published (``update_menu()`` after a state
change); a click only posts the entry to the UI queue, because pystray calls it on the tray thread.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from tray.view import SEPARATOR, MenuEntry


class _Click:
    """A callable without ``__code__``: pystray passes it (icon, item) as it is, and it only posts."""

    def __init__(self, post: Callable[[MenuEntry], None], entry: MenuEntry) -> None:
        self._post, self._entry = post, entry

    def __call__(self, _icon: Any, _item: Any) -> None:
        self._post(self._entry)


def build_menu(
    pystray: ModuleType, entries: Callable[[], tuple[MenuEntry, ...]], post: Callable[[MenuEntry], None]
) -> Any:
    def items() -> list[Any]:
        out = []
        for e in entries():
            if e.label == SEPARATOR:
                out.append(pystray.Menu.SEPARATOR)
            else:
                out.append(pystray.MenuItem(e.label, _Click(post, e), enabled=e.enabled))
        return out

    return pystray.Menu(items)
