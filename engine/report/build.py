"""A campaign's scaling report: best trials, retrained seeds on test, baselines, fits.

`build_report` reads the campaign from its storage (`collect`), retrains each
experiment's best configuration (`retrain`, resumable, skipped when stored), computes the
baselines once per distinct data spec (`baselines`), and fits loss(N) per horizon
(`powerlaw`). Each seed's test BCE is one point of the fit, so the fit sees the spread
between seeds; without retraining (`--no-retrain`) it falls back to the best validation
BCE per experiment, which the search biased, and the report says so.

An experiment whose data or training fails (a UserError such as a missing dataset, or a
configuration that does not fit in memory) gets its error in its row; the others go on.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import torch
from optuna.storages import BaseStorage

from engine.dataset.spec import DataSpec
from engine.dataset.splits import SplitFacts
from engine.dataset.windows import PreparedData
from engine.errors import UserError
from engine.report.baselines import Baseline, baselines
from engine.report.collect import ExperimentResult, collect
from engine.report.powerlaw import PowerLawFit, fit_power_law
from engine.report.retrain import SeedRun, retrain_experiment, retrain_study_name
from engine.report.splits import experiment_splits, splits_json
from engine.train.config import RunOptions
from engine.train.result import TrialDoesNotFit

FitSource = Literal["test", "validation"]
SUMMARY_METRICS = ("bce", "roc_auc", "pr_auc", "precision_at_best", "recall_at_best")


@dataclass(frozen=True)
class ReportOptions:
    seeds: int = 3
    retrain: bool = True
    baselines: bool = True
    device: str | None = None  # None: each experiment's configured device
    n_boot: int = 2000
    level: float = 0.95


@dataclass
class ExperimentRow:
    """One experiment's line of the report."""

    result: ExperimentResult
    retrain_study: str | None = None
    seeds: list[SeedRun] = field(default_factory=list)
    baselines: list[Baseline] = field(default_factory=list)
    error: str = ""  # retraining or baselines failed (the command exits 1)
    note: str = ""  # nothing to report yet (no complete trial): not a failure

    def metric(self, name: str) -> tuple[float, float]:
        """(mean, sample standard deviation) of a test metric over the seeds."""
        values = [r.test_metrics.get(name, math.nan) for r in self.seeds]
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return math.nan, math.nan
        spread = statistics.stdev(values) if len(values) > 1 else math.nan
        return statistics.fmean(values), spread

    def baseline(self, name: str) -> Baseline | None:
        return next((b for b in self.baselines if b.name == name), None)


@dataclass
class ScalingReport:
    campaign: str
    storage: str  # masked
    created: str
    options: ReportOptions
    rows: list[ExperimentRow]
    fits: dict[int, PowerLawFit]  # by horizon
    fit_source: FitSource
    warnings: list[str] = field(default_factory=list)
    splits: dict[str, SplitFacts | str] = field(default_factory=dict)  # by experiment

    def horizons(self) -> list[int]:
        return sorted({row.result.horizon for row in self.rows})


SeedCallback = Callable[[ExperimentResult, SeedRun], None]
StepCallback = Callable[[str], None]


def build_report(
    storage: BaseStorage,
    campaign: str,
    options: ReportOptions = ReportOptions(),
    *,
    storage_label: str = "",
    load_data: Callable[[DataSpec, str], PreparedData] | None = None,
    on_seed: SeedCallback | None = None,
    on_step: StepCallback | None = None,
) -> ScalingReport:
    """Everything the report shows, computing only what the storage does not hold yet."""
    results = collect(storage, campaign)
    prepared = _DataCache(load_data or _load_data)
    rows: list[ExperimentRow] = []
    for exp in results:
        row = ExperimentRow(exp)
        rows.append(row)
        if exp.best is None:
            row.note = f"no complete trial yet ({exp.state})"
            continue
        device = options.device or exp.config.device
        run_options = RunOptions(device=device, precision=exp.config.precision)
        try:
            if options.retrain and options.seeds > 0:
                if on_step is not None:
                    best = exp.best
                    on_step(
                        f"{exp.name}: best trial #{best.number} ({best.architecture.label}, "
                        f"{best.n_params:,} params), seeds 0..{options.seeds - 1} on the test split"
                    )
                row.retrain_study = retrain_study_name(exp.study_name)
                row.seeds = retrain_experiment(
                    storage,
                    exp,
                    list(range(options.seeds)),
                    functools.partial(prepared.get, exp.config.data, device),
                    run_options,
                    on_seed,
                )
            if options.baselines:
                row.baselines = prepared.baselines(exp.config.data, device)
        except (UserError, TrialDoesNotFit, torch.OutOfMemoryError) as error:
            row.error = (
                str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
            )
    source: FitSource = "test" if options.retrain and options.seeds > 0 else "validation"
    fits = _fits(rows, source, options)
    return ScalingReport(
        campaign=campaign,
        storage=storage_label,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        options=options,
        rows=rows,
        fits=fits,
        fit_source=source,
        warnings=data_spec_warnings(results),
        splits=experiment_splits(results),
    )


def data_spec_warnings(results: list[ExperimentResult]) -> list[str]:
    """A fit compares experiments of one horizon on one test split: say so when their
    data specs (dataset, context, split, normalization ...) differ."""
    out = []
    for horizon in sorted({r.horizon for r in results}):
        group = [r for r in results if r.horizon == horizon]
        specs = {repr(r.config.data) for r in group}
        if len(specs) > 1:
            names = ", ".join(r.name for r in group)
            out.append(
                f"h{horizon}: the experiments ({names}) use {len(specs)} different data specs, "
                "so their test splits differ and the fit compares unlike numbers"
            )
    return out


def fit_points(rows: list[ExperimentRow], source: FitSource) -> dict[int, list[tuple[int, float]]]:
    """(n_params, loss) points per horizon: one per seed (test) or per experiment."""
    points: dict[int, list[tuple[int, float]]] = {}
    for row in rows:
        best = row.result.best
        if best is None:
            continue
        bucket = points.setdefault(row.result.horizon, [])
        if source == "validation":
            bucket.append((best.n_params, best.value))
        else:
            bucket.extend((best.n_params, r.test_metrics.get("bce", math.nan)) for r in row.seeds)
    return points


def _fits(
    rows: list[ExperimentRow], source: FitSource, options: ReportOptions
) -> dict[int, PowerLawFit]:
    out: dict[int, PowerLawFit] = {}
    for horizon, points in sorted(fit_points(rows, source).items()):
        sizes = [n for n, _ in points]
        losses = [v for _, v in points]
        out[horizon] = fit_power_law(sizes, losses, n_boot=options.n_boot, level=options.level)
    return out


def _load_data(spec: DataSpec, device: str) -> PreparedData:
    from engine.dataset.build import ensure_dataset
    from engine.dataset.manifest import load_processed
    from engine.dataset.windows import prepare_data
    from engine.train.device import resolve_device

    ensure_dataset(spec.dataset, spec.tier, spec.version)
    frame, _ = load_processed(spec.dataset, spec.tier, spec.version)
    return prepare_data(frame, spec, resolve_device(device))


class _DataCache:
    """Prepared windows and baselines per (data spec, device): the experiments of one
    horizon share them, so they are built once."""

    def __init__(self, load: Callable[[DataSpec, str], PreparedData]) -> None:
        self._load = load
        self._data: dict[str, PreparedData] = {}
        self._baselines: dict[str, list[Baseline]] = {}

    def get(self, spec: DataSpec, device: str) -> PreparedData:
        key = repr((spec, device))
        if key not in self._data:
            self._data[key] = self._load(spec, device)
        return self._data[key]

    def baselines(self, spec: DataSpec, device: str) -> list[Baseline]:
        key = repr(spec)  # baselines run on the CPU copy; the device does not change them
        if key not in self._baselines:
            self._baselines[key] = baselines(self.get(spec, device))
        return self._baselines[key]


def report_dict(report: ScalingReport) -> dict[str, Any]:
    """A JSON-ready form of the whole report (written as report.json)."""
    return {
        "campaign": report.campaign,
        "storage": report.storage,
        "created": report.created,
        "seeds": report.options.seeds,
        "fit_source": report.fit_source,
        "warnings": report.warnings,
        "fits": {str(h): fit.to_dict() for h, fit in report.fits.items()},
        "splits": splits_json(report),
        "experiments": [
            {
                "experiment": row.result.name,
                "study": row.result.study_name,
                "budget": row.result.budget,
                "horizon": row.result.horizon,
                "state": row.result.state,
                "n_complete": row.result.n_complete,
                "n_trials": row.result.n_trials,
                "best_trial": None if row.result.best is None else row.result.best.number,
                "best_value": None if row.result.best is None else row.result.best.value,
                "architecture": None
                if row.result.best is None
                else row.result.best.architecture.to_dict(),
                "n_params": None if row.result.best is None else row.result.best.n_params,
                "retrain_study": row.retrain_study,
                "seeds": [
                    {"seed": r.seed, "trial": r.trial_number, "test_metrics": r.test_metrics}
                    for r in row.seeds
                ],
                "baselines": [b.to_dict() for b in row.baselines],
                "error": row.error,
                "note": row.note,
            }
            for row in report.rows
        ],
    }
