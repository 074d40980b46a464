"""The scaling view: one point per experiment, its best value against its best trial's
parameter count (log axis fitted to the data), coloured by horizon (by task when every
experiment has one horizon): the question the campaign exists to answer."""

from __future__ import annotations

from engine.protocol import ExperimentStatus
from hpotui.charts import Chart, Series, figure
from hpotui.state import CampaignState

COLORS = ("cyan", "orange", "green", "magenta", "blue", "red")


def factor_of(queue: list[ExperimentStatus]) -> tuple[str, dict[str, str]]:
    """The factor the points are coloured by ("horizon", else "task" when every
    experiment has one horizon, else "") and each experiment's level of it."""
    horizons = {e.horizon for e in queue}
    tasks = {e.task for e in queue}
    if len(horizons) > 1 or len(tasks) <= 1:
        return "horizon", {e.name: f"h{e.horizon}" for e in queue}
    return "task", {e.name: e.task for e in queue}


def scaling_series(state: CampaignState) -> list[Series]:
    _, level = factor_of(state.queue)
    points: dict[str, list[tuple[float, float]]] = {}
    for experiment in state.queue:
        best = state.best_trial(experiment.name)
        if best is None or best.value is None or best.n_params <= 0:
            continue
        points.setdefault(level[experiment.name], []).append((float(best.n_params), best.value))
    order = sorted(points, key=lambda k: (len(k), k))  # h1, h5, h20 in numeric order
    series = []
    for i, key in enumerate(order):
        xy = sorted(points[key])
        series.append(
            Series(
                key,
                tuple(p[0] for p in xy),
                tuple(p[1] for p in xy),
                "scatter",
                COLORS[i % len(COLORS)],
                "dot",
            )
        )
    return series


class ScalingChart(Chart):
    def on_mount(self) -> None:
        self.border_title = "Scaling"

    def update_from(self, state: CampaignState) -> None:
        self.show(
            figure(
                scaling_series(state),
                title="best per experiment",
                xlabel="parameters (log)",
                xlog=True,
                empty="no completed experiment yet",
            )
        )
