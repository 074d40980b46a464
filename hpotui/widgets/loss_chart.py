"""Loss curves: the running trial's train and validation loss per epoch, live."""

from __future__ import annotations

import math

from hpotui.charts import Chart, Series, figure
from hpotui.state import CampaignState


class LossChart(Chart):
    def on_mount(self) -> None:
        self.border_title = "Loss curves"

    def update_from(self, state: CampaignState, selected: str | None) -> None:
        trial = state.focus_trial(selected)
        if trial is None:
            self.show(figure([], title="no trial yet", empty="waiting for the first epoch"))
            return
        # NaN: a loss the storage does not hold (a train loss of a trial run by an engine
        # that did not store them); left out rather than drawn as zero
        trains = [(float(e), t) for e, t, _ in trial.epochs if math.isfinite(t)]
        vals = [(float(e), v) for e, _, v in trial.epochs if math.isfinite(v)]
        train = Series(
            "train", tuple(x for x, _ in trains), tuple(y for _, y in trains), color="cyan"
        )
        val = Series("val", tuple(x for x, _ in vals), tuple(y for _, y in vals), color="orange")
        status = "running" if trial.state == "running" else trial.state
        title = f"{trial.experiment} #{trial.number} ({status})"
        self.show(figure([train, val], title=title, xlabel="epoch", empty="no epoch yet"))
