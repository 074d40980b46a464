"""Quitting asks what happens to the campaign: it is never stopped by accident."""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

QuitChoice = Literal["stop", "leave"] | None


class QuitScreen(ModalScreen[QuitChoice]):
    BINDINGS = [
        ("s", "choose('stop')", "Stop after current trials"),
        ("l", "choose('leave')", "Leave running"),
        ("escape,c", "choose(None)", "Cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label("Quit hpotui. What should the campaign do?", classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stop after current trials (s)", id="stop", variant="error")
                yield Button("Leave running in background (l)", id="leave", variant="success")
                yield Button("Cancel (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        choice = event.button.id
        self.dismiss(choice if choice in ("stop", "leave") else None)  # type: ignore[arg-type]

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)  # type: ignore[arg-type]
