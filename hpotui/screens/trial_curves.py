"""One trial's loss curves, opened with Enter on its row of the trial table: what it
trained (architecture, parameters) and how (train and validation loss per epoch). The
main screen's loss panel shows the same trial afterwards, until another is opened."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Label

from hpotui.state import CampaignState
from hpotui.trial import Trial
from hpotui.widgets.format import count, value
from hpotui.widgets.key_footer import KeyFooter
from hpotui.widgets.loss_chart import LossChart, loss_figure


class TrialCurvesScreen(Screen[None]):
    BINDINGS = [("escape,q", "close", "Back"), ("question_mark", "help", "Help")]

    def __init__(self, experiment: str, number: int, state: CampaignState) -> None:
        super().__init__()
        self.experiment = experiment
        self.number = number
        self.state = state
        state.pinned[experiment] = number

    def compose(self) -> ComposeResult:
        yield Label(id="curves-title")
        yield LossChart(id="curves")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.refresh_curves()

    def trial(self) -> Trial | None:
        return self.state.trials.get(self.experiment, {}).get(self.number)

    def refresh_curves(self) -> None:
        """Redraw from the state (live: a running trial's epochs arrive while open)."""
        trial = self.trial()
        best = self.state.best_trial(self.experiment)
        self.query_one(LossChart).show(
            loss_figure(trial, best=trial is not None and trial is best, empty="trial gone")
        )
        self.query_one("#curves-title", Label).update(summary(trial))

    def action_help(self) -> None:
        from hpotui.screens.help import HelpScreen

        keys = [("esc / q", "back to the trial table")]
        self.app.push_screen(HelpScreen(keys, title="trial curves keys"))

    def action_close(self) -> None:
        self.dismiss(None)


def summary(trial: Trial | None) -> str:
    if trial is None:
        return "this trial is no longer stored (its study was re-run)"
    arch = trial.architecture
    shape = (
        f"d{arch.get('d_model', '-')} L{arch.get('n_layers', '-')} "
        f"H{arch.get('n_heads', '-')} ff{arch.get('d_ff', '-')}"
    )
    return (
        f"{trial.experiment} trial #{trial.number}: {trial.state}, value {value(trial.value)}, "
        f"{shape}, {count(trial.n_params or None)} params, {len(trial.epochs)} epochs"
    )
