"""Best architectures: each experiment's best trial, and the selected one's top trials."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from hpotui.state import CampaignState, Trial
from hpotui.widgets.format import count, value

ARCH = ("d_model", "n_layers", "n_heads", "d_ff")


class BestArchitectures(Static):
    """Read-only tables, redrawn only when the trials or the selection changed."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._key: object = None

    def on_mount(self) -> None:
        self.border_title = "Best architectures"
        self.border_subtitle = "d=d_model L=layers H=heads ff=d_ff"

    def update_from(self, state: CampaignState, selected: str | None) -> None:
        best = [(e.name, state.best_trial(e.name)) for e in state.queue]
        top = state.top_trials(selected, 5)
        key = (
            [(name, _sig(t)) for name, t in best],
            selected,
            [_sig(t) for t in top],
        )
        if key == self._key:
            return
        self._key = key
        per_experiment = _table("experiment")
        for name, trial in best:
            per_experiment.add_row(name, *_cells(trial))
        top_table = _table("trial")
        for trial in top:
            top_table.add_row(f"#{trial.number}", *_cells(trial))
        title = Text(f"top trials of {selected}" if selected else "top trials", style="bold")
        parts: list[object] = [per_experiment, title]
        parts.append(top_table if top else Text("no completed trial yet", style="dim"))
        self.update(Group(*parts), layout=False)  # type: ignore[arg-type]  # size set by CSS


def _sig(trial: Trial | None) -> object:
    if trial is None:
        return None
    return (trial.number, trial.value, trial.n_params, tuple(trial.architecture.items()))


def _table(first: str) -> Table:
    table = Table(box=None, padding=(0, 0, 0, 1), pad_edge=False, header_style="bold")
    table.add_column(first, no_wrap=True)
    for label in ("d", "L", "H", "ff", "params", "loss", "AUC"):
        table.add_column(label, justify="right", no_wrap=True)
    return table


def _cells(trial: Trial | None) -> list[str]:
    if trial is None:
        return ["-"] * 7
    arch = [str(trial.architecture.get(k, "-")) for k in ARCH]
    return [*arch, count(trial.n_params or None), value(trial.value), value(trial.auc, 3)]
