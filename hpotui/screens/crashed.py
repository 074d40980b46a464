"""The engine process died: its exit status and last error lines, and a key to restart.

Shown instead of a traceback; the campaign state is in storage, so a restart resumes it.
The line of keys comes right under the title, before the error lines, and the box
scrolls: at 80x24 and 40x12 the keys were cut off under twenty error lines.
"""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from hpotui.screens.dialog import Dialog

CrashChoice = Literal["restart", "quit", "dismiss"]


class EngineCrashedScreen(Dialog[CrashChoice]):
    BINDINGS = [
        ("r", "choose('restart')", "Restart engine"),
        ("q", "choose('quit')", "Quit"),
        ("escape", "choose('dismiss')", "Look at the dashboard"),
    ]

    def __init__(self, returncode: int | None, stderr: list[str], reason: str = "") -> None:
        super().__init__()
        self.returncode = returncode
        self.stderr = stderr
        self.reason = reason

    def compose(self) -> ComposeResult:
        status = "unknown" if self.returncode is None else str(self.returncode)
        if self.returncode == 2:  # the engine's exit code for user errors (engine.errors)
            title = "The engine did not start: the campaign has problems (exit status 2)."
        else:
            title = f"The engine stopped unexpectedly (exit status {status})."
        with VerticalScroll(classes="dialog-box crash-box"):
            yield Label(title, id="crash-title")
            if self.reason:
                yield Label(self.reason, classes="dialog-hint")
            yield Label(
                "r: restart the engine (after a fix; the campaign resumes from storage)"
                " · q: quit · esc: look at the dashboard",
                id="crash-keys",
            )
            lines = self.stderr[-20:] or ["(no error output)"]
            yield Static(Text("\n".join(lines), style="red"), id="crash-stderr")

    def action_choose(self, choice: CrashChoice) -> None:
        self.dismiss(choice)
