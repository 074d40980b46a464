"""Loss curves: train and validation loss per epoch of one trial of the selected
experiment (its running trial live, else the one opened from the trial table, else its
best: see `CampaignState.focus_trial`)."""

from __future__ import annotations

import math

from hpotui.charts import Chart, Figure, Series, figure
from hpotui.state import CampaignState
from hpotui.trial import Trial


def loss_figure(trial: Trial | None, *, best: bool = False, empty: str = "") -> Figure:
    """The curves of `trial` (`best`: it is its experiment's best trial)."""
    if trial is None:
        return figure([], title=empty or "no trial yet", empty="no epoch yet")
    # NaN: a loss the storage does not hold (a train loss of a trial run by an engine
    # that did not store them, or of one still running); left out rather than drawn as 0
    trains = [(float(e), t) for e, t, _ in trial.epochs if math.isfinite(t)]
    vals = [(float(e), v) for e, _, v in trial.epochs if math.isfinite(v)]
    train = Series("train", tuple(x for x, _ in trains), tuple(y for _, y in trains), color="cyan")
    val = Series("val", tuple(x for x, _ in vals), tuple(y for _, y in vals), color="orange")
    status = trial.state + (", best" if best else "")
    title = f"{trial.experiment} #{trial.number} ({status})"
    return figure([train, val], title=title, xlabel="epoch", xint=True, empty="no epoch yet")


class LossChart(Chart):
    def on_mount(self) -> None:
        self.border_title = "Loss curves"

    def update_from(self, state: CampaignState, selected: str | None) -> None:
        trial = state.focus_trial(selected)
        best = state.best_trial(selected) if selected is not None else None
        empty = f"{selected}: no trial has reported an epoch yet" if selected else "no trial yet"
        self.show(loss_figure(trial, best=trial is not None and trial is best, empty=empty))
