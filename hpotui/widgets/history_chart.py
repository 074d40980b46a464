"""Optimisation history of the selected experiment: each trial's value by trial number,
the best so far as a staircase, pruned trials at the last value they reported, failed
trials marked at the top."""

from __future__ import annotations

import math

from hpotui.charts import Chart, Series, figure
from hpotui.state import CampaignState
from hpotui.trial import Trial

Point = tuple[float, float]


def last_reported(trial: Trial) -> float | None:
    """The last validation loss a trial reported (a pruned trial has no value)."""
    for _, _, val in reversed(trial.epochs):
        if math.isfinite(val):
            return val
    return None


def history_series(trials: list[Trial]) -> tuple[list[Series], dict[str, int]]:
    """The chart's series (those with points) and the count of each kind of trial."""
    complete: list[Point] = [
        (float(t.number), t.value) for t in trials if t.state == "complete" and t.value is not None
    ]
    pruned: list[Point] = []
    for t in trials:
        if t.state == "pruned" and (value := last_reported(t)) is not None:
            pruned.append((float(t.number), value))
    failed = [float(t.number) for t in trials if t.state == "failed"]
    counts = {
        "complete": len(complete),
        "pruned": sum(t.state == "pruned" for t in trials),
        "failed": len(failed),
    }
    best: list[Point] = []
    for number, val in complete:
        if not best or val < best[-1][1]:
            best.append((number, val))
    ends = [p[0] for p in complete + pruned] + failed
    if best and max(ends) > best[-1][0]:
        best.append((max(ends), best[-1][1]))  # the best so far holds to the last trial
    values = [y for _, y in complete + pruned]
    top = max(values) if values else None
    series = [
        Series("best so far", *_xy(best), "step", "green"),
        Series(f"{counts['pruned']} pruned", *_xy(pruned), "scatter", "orange+", "x"),
        Series(f"{len(complete)} complete", *_xy(complete), "scatter", "cyan", "dot"),
    ]
    if top is not None:
        series.append(
            Series(
                f"{len(failed)} failed",
                tuple(failed),
                tuple(top for _ in failed),
                "scatter",
                "red",
                "!",
            )
        )
    return [s for s in series if s.x], counts


class HistoryChart(Chart):
    def on_mount(self) -> None:
        self.border_title = "Optimisation history"

    def update_from(self, state: CampaignState, selected: str | None) -> None:
        series, counts = history_series(state.trials_of(selected))
        title = selected or "no experiment selected"
        if selected is not None and not series and any(counts.values()):
            title += ": " + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        self.show(
            figure(series, title=title, xlabel="trial", xint=True, empty="no finished trial yet")
        )


def _xy(points: list[Point]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(p[0] for p in points), tuple(p[1] for p in points)
