"""Best architectures: each experiment's best trial, and the selected one's top trials.

Both always fit: when the panel is too short for every experiment's row and the top
trials under it, the experiments' table shows the rows around the selected experiment
(`… N more` says how many are left out; the queue lists every best value and moving the
selection scrolls them), so the top-trials list is never cut off (at 120x40 with 12
experiments it was)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from hpotui.state import CampaignState
from hpotui.trial import Trial
from hpotui.widgets.format import count, value

ARCH = ("d_model", "n_layers", "n_heads", "d_ff")
TOP = 5


class BestArchitectures(Static):
    """Read-only tables, redrawn only when the trials, the selection or the size changed."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._key: object = None
        self._state: CampaignState | None = None
        self._selected: str | None = None

    def on_mount(self) -> None:
        self.border_title = "Best architectures"
        self.border_subtitle = "d=d_model L=layers H=heads ff=d_ff"

    def on_resize(self, _: Any) -> None:
        if self._state is not None:
            self.update_from(self._state, self._selected)

    def update_from(self, state: CampaignState, selected: str | None) -> None:
        self._state, self._selected = state, selected
        best = [(e.name, state.best_trial(e.name)) for e in state.queue]
        height = self.size.height
        top = state.top_trials(selected, TOP)
        key = ([(name, _sig(t)) for name, t in best], selected, [_sig(t) for t in top], height)
        if key == self._key:
            return
        self._key = key
        names = [name for name, _ in best]
        at = names.index(selected) if selected in names else 0
        shown, top_n = fit(len(best), len(top), height, at)
        per_experiment = _table("experiment")
        for i in shown:
            name, trial = best[i]
            per_experiment.add_row(name, *_cells(trial), style="bold" if name == selected else "")
        parts: list[object] = [per_experiment]
        left_out = len(best) - len(shown)
        if left_out:
            parts.append(Text(f"… {left_out} more (select one to see it)", style="dim"))
        title = Text(f"top trials of {selected}" if selected else "top trials", style="bold")
        if top and top_n:
            top_table = _table("trial")
            for trial in top[:top_n]:
                top_table.add_row(f"#{trial.number}", *_cells(trial))
            parts += [title, top_table]
        elif not top:
            parts += [title, Text("no completed trial yet", style="dim")]
        self.update(Group(*parts), layout=False)  # type: ignore[arg-type]  # size set by CSS


def fit(n_best: int, n_top: int, height: int, selected: int) -> tuple[list[int], int]:
    """(indices of the experiments' rows shown, top trials shown) in `height` lines: the
    top trials' title, header and rows first; the experiments' header and as many rows
    as fit, a window around the `selected` one with a line saying how many are left out.
    A height of 0 (not laid out yet) shows everything."""
    if height <= 0:
        return list(range(n_best)), n_top
    top_lines = 1 + (1 + n_top if n_top else 1)  # title, then header + rows or a note
    room = height - top_lines - 1  # the experiments' header
    if room >= n_best:
        return list(range(n_best)), n_top
    if n_top > 3 and room < min(n_best, 5):  # the top 3 leave room for more experiments
        return fit(n_best, 3, height, selected)
    if room < 2:  # too short for both: fewer top trials, at least one experiment row
        n_top = max(0, min(n_top, height - 5))
        room = max(1, height - (2 + (1 + n_top if n_top else 1)) - 1)
        if room >= n_best:
            return list(range(n_best)), n_top
    rows = max(1, room - 1)  # one line says how many are left out
    start = min(max(0, selected - rows // 2), max(0, n_best - rows))
    return list(range(start, min(n_best, start + rows))), n_top


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
