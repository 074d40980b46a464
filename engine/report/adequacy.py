"""What the campaign's design can and cannot support, in numbers: the report's first block.

A verdict is only as good as what stands behind it, so before any verdict the report
says, per horizon: how many sizes there are (a trend needs 3, the exponent 5), how many
search trials completed per experiment against how many it was given (when the top k
is every complete trial, the "top" configurations are whatever the search finished),
how many configurations were retrained and how many runs exist against the plan, how
many epochs the retrains ran, how many test periods there are, and the smallest slope
per decade this design would detect with 80% power, from the noise it measured
(engine/report/trend.py `min_detectable`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from engine.report.powerlaw import MIN_SIZES as EXPONENT_SIZES
from engine.report.trend import MIN_SIZES as TREND_SIZES

if TYPE_CHECKING:
    from engine.report.build import ScalingReport

GOOD_SIZES = 5  # below this `hpotui check` warns (engine/campaign/design_checks.py)


@dataclass(frozen=True)
class ExperimentAdequacy:
    experiment: str
    horizon: int
    complete: int
    trials: int
    configurations: int  # retrained (the top k that exist)
    runs: int
    planned_runs: int
    epochs: tuple[int, int]  # min, max epochs the retrains ran (0, 0: none)
    top_is_all: bool  # every complete trial is a "top" configuration


@dataclass(frozen=True)
class HorizonAdequacy:
    horizon: int
    sizes: int
    detectable: float  # slope per decade found with 80% power (NaN: unknown)
    periods: int


@dataclass
class Adequacy:
    horizons: list[HorizonAdequacy] = field(default_factory=list)
    experiments: list[ExperimentAdequacy] = field(default_factory=list)
    seeds: int = 0
    top_k: int = 0

    def lines(self) -> list[str]:
        """The block's sentences: numbers, then what they cannot support."""
        out = []
        for h in self.horizons:
            can = ""
            if h.sizes < TREND_SIZES:
                can = f", too few for a trend (needs {TREND_SIZES})"
            elif h.sizes < EXPONENT_SIZES:
                can = f", too few for a power-law exponent (needs {EXPONENT_SIZES})"
            detect = (
                f"{h.detectable:.4f} test BCE per decade"
                if h.detectable == h.detectable
                else "unknown"
            )
            periods = f"{h.periods} test period{'s' if h.periods != 1 else ''}"
            out.append(
                f"h{h.horizon}: {h.sizes} sizes{can}; {periods}; smallest slope detected "
                f"with 80% power: {detect}"
            )
        thin = [e for e in self.experiments if e.complete < self.top_k]
        full = [e for e in self.experiments if e.top_is_all and e.complete >= self.top_k]
        short = [e for e in self.experiments if e.runs < e.planned_runs]
        if self.experiments:
            complete = ", ".join(
                f"{e.experiment} {e.complete}/{e.trials}" for e in self.experiments
            )
            out.append(f"complete search trials: {complete}")
            epochs = [e.epochs for e in self.experiments if e.runs]
            if epochs:
                low, high = min(e[0] for e in epochs), max(e[1] for e in epochs)
                out.append(f"retrains ran {low}-{high} epochs (early stopping per period)")
            configs = sorted({e.configurations for e in self.experiments})
            span = f"{configs[0]}" if len(configs) == 1 else f"{configs[0]}-{configs[-1]}"
            out.append(
                f"configurations retrained per experiment: {span} (top {self.top_k}), "
                f"x {self.seeds} seeds x test periods"
            )
        if thin:
            out.append(
                "fewer complete trials than the top "
                f"{self.top_k}: " + ", ".join(f"{e.experiment} ({e.complete})" for e in thin)
            )
        if full:
            out.append(
                "the top configurations are every complete trial (the search chose nothing): "
                + ", ".join(e.experiment for e in full)
            )
        if short:
            out.append(
                "runs missing against the plan: "
                + ", ".join(f"{e.experiment} {e.runs} of {e.planned_runs}" for e in short)
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def assess(report: ScalingReport) -> Adequacy:
    from engine.report.build import period_indices

    out = Adequacy(seeds=report.options.seeds, top_k=report.options.top_k)
    retrained = report.fit_source == "test"
    for row in report.rows:
        exp = row.result
        periods = len(period_indices(exp.config.data))
        epochs = [r.epochs for r in row.runs]
        planned = len(exp.top) * report.options.seeds * periods if retrained else 0
        out.experiments.append(
            ExperimentAdequacy(
                exp.name, exp.horizon, exp.n_complete, exp.n_trials, len(exp.top),
                len(row.runs), planned, (min(epochs), max(epochs)) if epochs else (0, 0),
                bool(exp.top) and len(exp.top) >= exp.n_complete,
            )
        )  # fmt: skip
    for horizon in report.horizons():
        rows = [r for r in report.rows if r.result.horizon == horizon and r.result.best]
        sizes = len({r.result.budget for r in rows})
        pooled = report.trend("horizon", horizon)
        detect = pooled.trend.min_detectable if pooled else float("nan")
        periods = max((len(period_indices(r.result.config.data)) for r in rows), default=0)
        out.horizons.append(HorizonAdequacy(horizon, sizes, detect, periods))
    return out
