"""A campaign's scaling report, as a pipeline of small steps:

collect -> retrain -> baselines -> compare -> trend -> words -> figures

- collect (`collect`): each experiment's top k configurations from its storage.
- retrain (`retrain`, `pool`): each of them x seeds x walk-forward test periods, trained
  before the period's test block and tested once on it (resumable, skipped when stored).
- baselines (`baselines`, `data`): constant prior, persistence, logistic regression and
  the oracle constant, refitted per period, on the same test windows.
- compare (`analysis.comparisons`, `compare`): each experiment against each baseline,
  a paired test over test windows pooled over periods, Holm-adjusted.
- trend (`analysis.trends`, `trend`, `powerlaw`): the change per decade of parameters
  per level of every factor (horizon, task, ...), pooled and per period, whether two
  levels' trends differ, and the power law's exponent where the sizes determine it.
- words (`words`): every sentence, headline first, after what the design can support
  (`adequacy`).
- figures (`figures`) and the files (`tables`).

Without retraining (`--no-retrain`) the trend falls back to the top configurations'
validation BCE, which the search biased, and the report says so. An experiment whose
data or training fails (a UserError such as a missing dataset, or a configuration that
does not fit in memory) gets its error in its row; the others go on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from optuna.storages import BaseStorage

from engine.dataset.spec import DataSpec
from engine.dataset.splits import SplitFacts
from engine.dataset.windows import PreparedData
from engine.errors import UserError
from engine.report import analysis
from engine.report.adequacy import Adequacy, assess
from engine.report.baselines import CONSTANT_PRIOR, Baseline
from engine.report.collect import DEFAULT_TOP_K, ExperimentResult, collect
from engine.report.compare import Comparison
from engine.report.data import PeriodData
from engine.report.pool import run_all
from engine.report.powerlaw import Exponent
from engine.report.retrain import (
    RetrainTask,
    SeedRun,
    retrain_study_name,
    store_run,
    stored_runs,
    tasks_for,
)
from engine.report.scores import THRESHOLD_FREE
from engine.report.splits import experiment_periods, experiment_splits
from engine.report.trend import TrendDifference
from engine.report.words import DifferenceFact, DriftFact, TrendFact, say, summaries
from engine.train.config import RunOptions

FitSource = Literal["test", "validation"]
SUMMARY_METRICS = THRESHOLD_FREE


@dataclass(frozen=True)
class ReportOptions:
    seeds: int = 3
    top_k: int = DEFAULT_TOP_K  # configurations retrained per experiment
    retrain: bool = True
    baselines: bool = True
    device: str | None = None  # None: each experiment's configured device
    level: float = 0.95
    workers: int = 1  # processes that train runs (engine/report/pool.py)


def period_indices(spec: DataSpec) -> list[int]:
    """The walk-forward periods a data spec has: split.test_periods in contiguous mode
    with a test split, else one (engine/dataset/periods.py)."""
    split = spec.split
    if split.mode == "contiguous" and split.test_fraction > 0:
        return list(range(1, split.test_periods + 1))
    return [1]


@dataclass
class ExperimentRow:
    """One experiment's line of the report."""

    result: ExperimentResult
    retrain_study: str | None = None
    runs: list[SeedRun] = field(default_factory=list)  # configurations x seeds x periods
    baselines: list[Baseline] = field(default_factory=list)  # each per period
    comparisons: list[Comparison] = field(default_factory=list)
    error: str = ""  # retraining or baselines failed (the command exits 1)
    note: str = ""  # nothing to report yet (no complete trial): not a failure

    def values(self, name: str) -> list[float]:
        return [r.test_metrics.get(name, math.nan) for r in self.runs]

    def metric(self, name: str) -> tuple[float, float]:
        """(mean, sample standard deviation) of a test metric over the runs, undefined
        (NaN) runs left out."""
        values = [v for v in self.values(name) if math.isfinite(v)]
        if not values:
            return math.nan, math.nan
        spread = statistics.stdev(values) if len(values) > 1 else math.nan
        return statistics.fmean(values), spread

    def baseline(self, name: str, period: int = 1) -> Baseline | None:
        return next((b for b in self.baselines if b.name == name and b.period == period), None)

    def comparison(self, baseline: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.baseline == baseline), None)


@dataclass
class ScalingReport:
    campaign: str
    storage: str  # masked
    created: str
    options: ReportOptions
    rows: list[ExperimentRow]
    fit_source: FitSource
    trends: list[analysis.TrendRow] = field(default_factory=list)
    exponents: dict[Hashable, Exponent] = field(default_factory=dict)  # by horizon
    differences: list[TrendDifference] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    splits: dict[str, SplitFacts | str] = field(default_factory=dict)  # by experiment
    periods: dict[str, list[dict[str, Any]] | str] = field(default_factory=dict)
    drift: list[DriftFact] = field(default_factory=list)
    adequacy: Adequacy | None = None
    headline: list[str] = field(default_factory=list)

    def horizons(self) -> list[int]:
        return sorted({row.result.horizon for row in self.rows})

    def trend(self, factor: str, level: Hashable, period: int = 0) -> analysis.TrendRow | None:
        return next((t for t in self.trends if (t.factor, t.level, t.period) ==
                     (factor, level, period)), None)  # fmt: skip

    def trend_facts(self) -> list[TrendFact]:
        """One fact per level of each factor: pooled, with its periods and exponent."""
        out = []
        of = "test BCE" if self.fit_source == "test" else "validation BCE (biased)"
        for t in self.trends:
            if t.period != analysis.ALL_PERIODS:
                continue
            periods = tuple(p.trend for p in self.trends
                            if (p.factor, p.level) == (t.factor, t.level) and p.period)  # fmt: skip
            exponent = self.exponents.get(t.level) if t.factor == "horizon" else None
            out.append(TrendFact(t.label, t.trend, periods, exponent, of))
        return out


SeedCallback = Callable[[ExperimentResult, SeedRun], None]
StepCallback = Callable[[str], None]
PlanCallback = Callable[[int], None]
DataLoader = Callable[[DataSpec, int, str], PreparedData]
LabelLoader = Callable[[DataSpec], NDArray[np.float64]]


def _run_options(exp: ExperimentResult, options: ReportOptions) -> RunOptions:
    return RunOptions(
        device=options.device or exp.config.device,
        precision=exp.config.precision,
        dropout_sites=exp.config.dropout_sites,
        objective=exp.config.objective,
        threads=1 if options.workers > 1 else None,
    )


def _retrain(
    storage: BaseStorage,
    rows: list[ExperimentRow],
    options: ReportOptions,
    data: PeriodData,
    on_seed: SeedCallback | None,
    on_plan: PlanCallback | None,
) -> None:
    """Train every run not stored yet (in parallel when options.workers > 1), then read
    each experiment's runs back from the storage in (period, configuration, seed) order."""
    seeds = list(range(options.seeds))
    by_name = {row.result.name: row for row in rows}
    planned: dict[str, list[RetrainTask]] = {}
    todo: list[RetrainTask] = []
    for row in rows:
        exp = row.result
        if exp.best is None:
            continue
        try:
            tasks = tasks_for(
                exp, seeds, period_indices(exp.config.data), _run_options(exp, options)
            )
        except UserError as error:
            row.error = str(error)
            continue
        planned[exp.name] = tasks
        done = stored_runs(storage, exp)
        for task in tasks:
            if task.key in done and on_seed is not None:
                on_seed(exp, done[task.key])
        todo += [t for t in tasks if t.key not in done]
        row.retrain_study = retrain_study_name(exp.study_name)
    if on_plan is not None:
        on_plan(len(todo))

    def on_done(task: RetrainTask, attrs: dict[str, Any] | None, error: str) -> None:
        row = by_name[task.experiment]
        if attrs is None:
            row.error = row.error or error
            return
        run = store_run(storage, row.result, attrs)
        if on_seed is not None:
            on_seed(row.result, run)

    def load(task: RetrainTask) -> PreparedData:
        return data.get(task.data_spec(), task.period, str(task.options["device"]))

    run_all(todo, options.workers, load, on_done)
    for name, tasks in planned.items():
        row = by_name[name]
        stored = stored_runs(storage, row.result)
        row.runs = [stored[t.key] for t in tasks if t.key in stored]


def build_report(
    storage: BaseStorage,
    campaign: str,
    options: ReportOptions = ReportOptions(),
    *,
    storage_label: str = "",
    load_data: DataLoader | None = None,
    load_labels: LabelLoader | None = None,
    on_seed: SeedCallback | None = None,
    on_step: StepCallback | None = None,
    on_plan: PlanCallback | None = None,
) -> ScalingReport:
    """Everything the report shows, computing only what the storage does not hold yet.

    `on_plan` hears first how many runs must be trained (the rest are stored)."""
    results = collect(storage, campaign, options.top_k)
    data = PeriodData(load_data, load_labels)
    rows = [ExperimentRow(exp) for exp in results]
    for row in rows:
        if row.result.best is None:
            row.note = f"no complete trial yet ({row.result.state})"
    retraining = options.retrain and options.seeds > 0
    if retraining:
        if on_step is not None:
            on_step("retrain: top configurations x seeds x test periods")
        _retrain(storage, rows, options, data, on_seed, on_plan)
    elif on_plan is not None:
        on_plan(0)
    if options.baselines:
        if on_step is not None:
            on_step("baselines: refitted per test period")
        for row in rows:
            _baselines(row, options, data)
    source: FitSource = "test" if retraining else "validation"
    if on_step is not None:
        on_step("compare and trend")
    report = ScalingReport(
        campaign=campaign,
        storage=storage_label,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        options=options,
        rows=rows,
        fit_source=source,
        warnings=data_spec_warnings(results),
        splits=experiment_splits(results),
        periods=experiment_periods(results),
    )
    if source == "test" and options.baselines:
        report.comparisons = analysis.comparisons(rows)
        for row in rows:
            row.comparisons = [c for c in report.comparisons if c.experiment == row.result.name]
    pts = analysis.points(rows, source)
    report.trends = analysis.trends(pts, options.level)
    report.exponents = analysis.exponents(pts, options.level)
    report.differences = analysis.differences(pts, options.level)
    report.drift = drift_facts(rows)
    report.adequacy = assess(report)
    report.headline = headline(report)
    return report


def _baselines(row: ExperimentRow, options: ReportOptions, data: PeriodData) -> None:
    exp = row.result
    if exp.best is None or row.error:
        return
    device = options.device or exp.config.device
    try:
        for period in period_indices(exp.config.data):
            row.baselines += data.baselines(exp.config.data, period, device)
    except UserError as error:
        row.error = str(error)


def headline(report: ScalingReport) -> list[str]:
    """What a reader must see first: the trend per factor level (with its periods and
    exponent), whether trends differ between levels, the experiments against each
    baseline where any is beaten or loses, then label drift where it exceeds the limit."""
    lines = [say(fact) for fact in report.trend_facts()]
    lines += [say(DifferenceFact(d)) for d in report.differences]
    lines += [say(fact) for fact in summaries(report.comparisons)]
    lines += [say(fact) for fact in report.drift if fact.drifts]
    return lines


def drift_facts(rows: list[ExperimentRow]) -> list[DriftFact]:
    """Per horizon and period, the fitted and test label rates (from the constant prior
    of the horizon's first experiment with baselines)."""
    out: dict[tuple[int, int], DriftFact] = {}
    for row in rows:
        for prior in (b for b in row.baselines if b.name == CONSTANT_PRIOR):
            key = (row.result.horizon, prior.period)
            fitted, test = prior.test_metrics.get("prior"), prior.test_metrics.get("label_rate")
            if key not in out and fitted is not None and test is not None:
                out[key] = DriftFact(key[0], key[1], fitted, test)
    return [out[k] for k in sorted(out)]


def data_spec_warnings(results: list[ExperimentResult]) -> list[str]:
    """A trend compares experiments of one horizon on one test split: say so when their
    data specs (dataset, context, split, normalization ...) differ."""
    out = []
    for horizon in sorted({r.horizon for r in results}):
        group = [r for r in results if r.horizon == horizon]
        specs = {repr(r.config.data) for r in group}
        if len(specs) > 1:
            names = ", ".join(r.name for r in group)
            out.append(
                f"h{horizon}: the experiments ({names}) use {len(specs)} different data specs, "
                "so their test splits differ and the trend compares unlike numbers"
            )
    return out
