"""The top line: campaign, its progress and ETA, engine, workers, running trials, thermal
badge, and "storage unreachable, retrying (1m12s)" during a database outage.

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
        # 1 (< 100 columns): no pid/host, engine state only when not running; 2 (< 70):
        # short words too. The thermal badge always stays in view.
        self.compact = 0
        self._shown: Text | None = None

    def update_from(self, state: CampaignState) -> None:
        text = Text()
        hello = state.hello
        name = hello.campaign if hello else (state.campaign or "hpotui")
        text.append(name[:12] if self.compact >= 2 else name, style="bold")
        if state.queue:
            progress = state.progress()
            label = progress.short_label() if self.compact >= 2 else progress.label()
            text.append(f" [{label}]", style="bold cyan")
        if not self.compact:
            text.append(f"  engine {self.link_state}")
        elif self.link_state not in ("running", "attached", "finished") or (
            self.compact == 1 and self.link_state == "finished"
        ):  # narrow: only news (at 40 columns "done" in the label says finished)
            text.append(f"  {self.link_state}")
        if hello and not self.compact:
            text.append(f" (pid {hello.pid} on {hello.host})", style="dim")
        if state.paused_all:
            text.append("  ALL PAUSED", style="bold yellow")
        running = len(state.running_trials())
        if self.compact >= 2:
            text.append(f"  {state.workers}w{f' {running}r' if running else ''} ")
        else:
            thermal = "" if self.compact else "thermal "
            groups = fused_groups(state, short=bool(self.compact))
            text.append(f"  workers {state.workers}  running {running}{groups}  {thermal}")
        text.append_text(thermal_badge(state.thermal))
        outage = state.outage_status()
        if outage:
            text.append(f"  {outage}", style="bold red")
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)  # one fixed line: no relayout


def fused_groups(state: CampaignState, *, short: bool = False) -> str:
    """` (2 workers, groups of 4)` when workers run fused groups (more trials running
    than workers running them), else "": `running 8` next to `workers 2` explained."""
    busy, sizes = state.running_groups()
    if not sizes or sum(sizes) <= busy:
        return ""
    groups = f"groups of {sizes[0]}" if len(set(sizes)) == 1 else f"groups of up to {sizes[0]}"
    if short:
        return f" ({groups})"
    return f" ({busy} worker{'s' if busy != 1 else ''}, {groups})"
