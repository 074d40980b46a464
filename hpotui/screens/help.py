"""`?`: every key of the dashboard (the same list the footer and command palette use)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from hpotui.screens.dialog import Dialog


class HelpScreen(Dialog[None]):
    BINDINGS = [("escape,question_mark,q", "close", "Close")]

    def __init__(self, keys: Sequence[tuple[str, str]], title: str = "hpotui keys") -> None:
        super().__init__()
        self.keys = list(keys)
        self.title_text = title

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 1), show_header=False)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, description in self.keys:
            table.add_row(key, description)
        with VerticalScroll(classes="dialog-box help-box"):
            yield Label(self.title_text, classes="dialog-question")
            yield Static(table)
            yield Label(
                "ctrl+p: command palette (every action by name) · esc: close",
                classes="dialog-hint",
            )

    def action_close(self) -> None:
        self.dismiss(None)
