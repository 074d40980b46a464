"""Add experiments: the path of a campaign TOML whose experiments join the queue."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Input, Label

from hpotui.screens.dialog import Dialog


class AddExperimentsScreen(Dialog[str | None]):
    """Dismisses with an absolute path to an existing file, or None when cancelled."""

    BINDINGS = [("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#add-path"  # the path is typed at once (not the scrolling box)

    def __init__(self, start: Path | None = None) -> None:
        super().__init__()
        self.start = start

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog-box"):
            yield Label(
                "Add the experiments of a campaign config (TOML):", classes="dialog-question"
            )
            yield Input(
                value=str(self.start) if self.start else "",
                placeholder="configs/more.toml",
                id="add-path",
            )
            yield Label("enter: add · esc: cancel", id="add-error", classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self._error("type the path of a campaign TOML file")
            return
        path = Path(text).expanduser()
        if not path.is_absolute():
            from engine.paths import workspace

            candidates = [Path.cwd() / path, workspace() / path]
            path = next((c for c in candidates if c.exists()), candidates[0])
        if not path.is_file():
            self._error(f"{text}: no such file")
            return
        self.dismiss(str(path.resolve()))

    def _error(self, message: str) -> None:
        label = self.query_one("#add-error", Label)
        label.update(message)
        label.add_class("error")

    def action_cancel(self) -> None:
        self.dismiss(None)
