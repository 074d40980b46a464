"""Quitting asks what happens to the campaign: it is never stopped by accident.

A choice needs two deliberate keys: `s` or `l` (or the arrows) only selects a button,
Enter confirms the selected one; a single stray letter does nothing irreversible.
Nothing is selected at first, so Enter alone does nothing either. Escape cancels.
"""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Label

from hpotui.screens.dialog import Dialog

QuitChoice = Literal["stop", "leave"] | None


class QuitScreen(Dialog[QuitChoice]):
    BINDINGS = [
        Binding("s", "select('stop')", "Select stop"),
        Binding("l", "select('leave')", "Select leave running"),
        Binding("left", "step(-1)", "Previous", show=False, priority=True),
        Binding("right,tab", "step(1)", "Next", show=False, priority=True),
        Binding("enter", "confirm", "Confirm", priority=True),
        Binding("escape,c", "cancel", "Cancel"),
    ]
    CHOICES = ("stop", "leave", "cancel")
    AUTO_FOCUS = None

    def __init__(self) -> None:
        super().__init__()
        self.selected: str | None = None  # nothing until the user picks one

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog-box"):
            yield Label("Quit hpotui. What should the campaign do?", classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stop after current trials (s)", id="stop", variant="error")
                yield Button("Leave running in background (l)", id="leave", variant="success")
                yield Button("Cancel (esc)", id="cancel")
            yield Label("s / l / arrows select, Enter confirms, Esc cancels", classes="dialog-hint")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        choice = event.button.id
        self.dismiss(choice if choice in ("stop", "leave") else None)  # type: ignore[arg-type]

    def action_select(self, choice: str) -> None:
        self.selected = choice
        self.query_one(f"#{choice}", Button).focus()

    def action_step(self, by: int) -> None:
        at = -1 if by > 0 else 0
        if self.selected is not None:
            at = self.CHOICES.index(self.selected)
        self.action_select(self.CHOICES[(at + by) % len(self.CHOICES)])

    def action_confirm(self) -> None:
        if self.selected is None:
            self.notify("select a choice first: s, l or the arrows", severity="warning")
            return
        self.dismiss(self.selected if self.selected != "cancel" else None)  # type: ignore[arg-type]

    def action_cancel(self) -> None:
        self.dismiss(None)
