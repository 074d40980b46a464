"""Loss curves: the running trial's train and validation loss per epoch, live."""

from __future__ import annotations

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
        epochs = tuple(float(e[0]) for e in trial.epochs)
        train = Series("train", epochs, tuple(e[1] for e in trial.epochs), color="cyan")
        val = Series("val", epochs, tuple(e[2] for e in trial.epochs), color="orange")
        status = "running" if trial.state == "running" else trial.state
        title = f"{trial.experiment} #{trial.number} ({status})"
        self.show(figure([train, val], title=title, xlabel="epoch", empty="no epoch yet"))
