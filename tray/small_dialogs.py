"""The small dialogs: Log in…, the Quit question.

Logging in talks to the catalogue server, which can take seconds: the call runs on a worker thread and its
answer comes back through the UI queue, so the dialog never freezes and never touches Tk off the main thread.
"""

from __future__ import annotations

import threading
import tkinter as tk
from collections.abc import Callable, Sequence
from tkinter import ttk

from tray._api import Credentials, DataUploaderError, Session
from tray.forms import Form, entry
from tray.mainthread import UiQueue

FINISH_THEN_QUIT = "Finish, then quit"
QUIT_NOW = "Quit now (resume next start)"
CANCEL = "Cancel"


class LoginDialog(Form):
    def __init__(
        self,
        root: tk.Misc,
        ui: UiQueue,
        *,
        profiles: Sequence[str],
        login: Callable[[Credentials, str], Session],
        on_done: Callable[[str, Session], None],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(root, "DataUploader — Log in", on_close=on_close)
        self._ui, self._login, self._on_done = ui, login, on_done
        b = self.body
        self.profile = ttk.Combobox(b, values=list(profiles), state="readonly")
        self.profile.set(profiles[0] if profiles else "")
        self.field("profile", "Profile:", self.profile)
        self.username = entry(b, width=32)
        self.field("username", "Username:", self.username)
        self.password = entry(b, width=32, show="•")
        self.field("password", "Password:", self.password)
        self.token = entry(b, width=32)
        self.field("token", "or token:", self.token)
        self.button = self.buttons(("Log in", self.submit, True), ("Cancel", self.close, False))["Log in"]
        self.place(min_width=420)
        (self.username if len(profiles) <= 1 else self.profile).focus_set()

    def submit(self) -> None:
        token = self.token.get().strip()
        user, password = self.username.get().strip(), self.password.get()
        if not token and not (user and password):
            self.show_error(
                "username" if not user else "password", "give a username and password, or a token"
            )
            return
        creds = Credentials(token=token) if token else Credentials(username=user, password=password)
        profile = self.profile.get()
        self.button.state(["disabled"])
        self.show_error(None, "Logging in…")

        def work() -> None:
            try:
                session = self._login(creds, profile)
            except DataUploaderError as exc:
                self._ui.post(self._failed, str(exc))
            except Exception as exc:  # a bug must still leave the dialog usable
                self._ui.post(self._failed, f"{type(exc).__name__}: {exc}")
            else:
                self._ui.post(self._succeeded, profile, session)

        threading.Thread(target=work, name="login", daemon=True).start()

    def _failed(self, message: str) -> None:
        if self.closed:
            return
        self.button.state(["!disabled"])
        self.show_error(None, message)
        self.password.delete(0, "end")
        self.password.focus_set()

    def _succeeded(self, profile: str, session: Session) -> None:
        self._on_done(profile, session)
        self.close()


class QuitDialog(Form):
    """Work is in flight: finish it first, stop now and resume next start, or stay."""

    def __init__(
        self,
        root: tk.Misc,
        *,
        running: Sequence[str],
        choose: Callable[[str], None],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(root, "DataUploader — Quit", on_close=on_close)
        self._choose = choose
        names = ", ".join(running[:3]) + (f" and {len(running) - 3} more" if len(running) > 3 else "")
        ttk.Label(
            self.body,
            text=f"Still uploading: {names}.\n\n"
            "Finish: stop taking new files, upload and verify what is there, then quit.\n"
            "Quit now: stop at once; the next start resumes where it stopped.",
            justify="left",
            wraplength=480,
        ).grid(row=self.next_row(), column=0, columnspan=3, sticky="w")
        self.choice = self.buttons(
            (FINISH_THEN_QUIT, lambda: self._pick(FINISH_THEN_QUIT), True),
            (QUIT_NOW, lambda: self._pick(QUIT_NOW), False),
            (CANCEL, self.close, False),
        )
        self.place(min_width=480)
        self.choice[FINISH_THEN_QUIT].focus_set()

    def _pick(self, what: str) -> None:
        self.close()
        self._choose(what)
