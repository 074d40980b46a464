"""The scaling view: each experiment's best value against its best trial's parameter
count (log axis), one series per horizon: the question the campaign exists to answer."""

from __future__ import annotations

from hpotui.charts import Chart, Series, figure
from hpotui.state import CampaignState

COLORS = ("cyan", "orange", "green", "magenta", "blue", "red")


class ScalingChart(Chart):
    def on_mount(self) -> None:
        self.border_title = "Scaling"

    def update_from(self, state: CampaignState) -> None:
        by_horizon: dict[int, list[tuple[float, float]]] = {}
        for experiment in state.queue:
            best = state.best_trial(experiment.name)
            if best is None or best.value is None or best.n_params <= 0:
                continue
            by_horizon.setdefault(experiment.horizon, []).append((float(best.n_params), best.value))
        series = []
        for i, (horizon, points) in enumerate(sorted(by_horizon.items())):
            points.sort()
            series.append(
                Series(
                    f"h{horizon}",
                    tuple(p[0] for p in points),
                    tuple(p[1] for p in points),
                    "line",
                    COLORS[i % len(COLORS)],
                    "dot",
                )
            )
        self.show(
            figure(
                series,
                title="best value vs parameters",
                xlabel="parameters (log)",
                xlog=True,
                empty="no completed experiment yet",
            )
        )
