"""Optimisation history of the selected experiment: value per trial, best so far,
pruned and failed trials marked."""

from __future__ import annotations

from hpotui.charts import Chart, Series, figure
from hpotui.state import CampaignState


class HistoryChart(Chart):
    def on_mount(self) -> None:
        self.border_title = "Optimisation history"

    def update_from(self, state: CampaignState, selected: str | None) -> None:
        trials = state.trials_of(selected)
        complete = [
            (t.number, t.value) for t in trials if t.state == "complete" and t.value is not None
        ]
        pruned = [
            (t.number, t.value) for t in trials if t.state == "pruned" and t.value is not None
        ]
        best_x: list[float] = []
        best_y: list[float] = []
        best = float("inf")
        for number, val in complete:
            assert val is not None
            best = min(best, val)
            best_x.append(float(number))
            best_y.append(best)
        values = [v for _, v in complete + pruned if v is not None]
        top = max(values) if values else 1.0
        failed = [float(t.number) for t in trials if t.state == "failed"]
        series = [
            Series("trial", _xs(complete), _ys(complete), "scatter", "cyan", "dot"),
            Series("best so far", tuple(best_x), tuple(best_y), "line", "green"),
            Series("pruned", _xs(pruned), _ys(pruned), "scatter", "yellow", "x"),
            Series("failed", tuple(failed), tuple(top for _ in failed), "scatter", "red", "x"),
        ]
        title = f"{selected}: {len(complete)} complete" if selected else "no experiment selected"
        self.show(figure(series, title=title, xlabel="trial", empty="no finished trial yet"))


def _xs(points: list[tuple[int, float]]) -> tuple[float, ...]:
    return tuple(float(p[0]) for p in points)


def _ys(points: list[tuple[int, float]]) -> tuple[float, ...]:
    return tuple(float(p[1]) for p in points)
