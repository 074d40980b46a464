"""The top line: campaign, engine, workers, running trials, thermal badge, and
"storage unreachable, retrying (1m12s)" during a database outage.

Redrawn only when its text changes: a repaint of the top line would widen the region
the compositor re-renders on every frame to the whole screen."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from hpotui.state import CampaignState
from hpotui.widgets.format import thermal_badge


class StatusBar(Static):
    DEFAULT_CSS = "StatusBar { height: 1; background: $panel; padding: 0 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.link_state = "connecting"
        self._shown: Text | None = None

    def update_from(self, state: CampaignState) -> None:
        text = Text()
        hello = state.hello
        text.append(hello.campaign if hello else "hpotui", style="bold")
        text.append(f"  engine {self.link_state}")
        if hello:
            text.append(f" (pid {hello.pid} on {hello.host})", style="dim")
        text.append(f"  workers {state.workers}")
        if state.paused_all:
            text.append("  ALL PAUSED", style="bold yellow")
        running = len(state.running_trials())
        text.append(f"  running {running}")
        text.append("  thermal ")
        text.append_text(thermal_badge(state.thermal))
        outage = state.outage_status()
        if outage:
            text.append(f"  {outage}", style="bold red")
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)  # one fixed line: no relayout
