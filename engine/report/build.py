"""A campaign's scaling report, as a pipeline of small steps:

collect -> retrain -> baselines -> compare -> fit -> words

- collect (`collect`): each experiment's top k configurations from its storage.
- retrain (`retrain`): each of them x seeds on train+validation, tested once (resumable,
  skipped when stored).
- baselines (`baselines`): constant prior, persistence, logistic regression and the
  oracle constant, once per distinct data spec, on the same test windows.
- compare (`compare`): every run against every baseline on test BCE and ROC-AUC.
- fit (`powerlaw`): loss(N) per horizon over all runs, with the hierarchical interval,
  and the same fit of each run's margin over logistic regression.
- words (`words`): every sentence, headline first.

Without retraining (`--no-retrain`) the fit falls back to the top configurations' best
validation BCE, which the search biased, and the report says so. An experiment whose
data or training fails (a UserError such as a missing dataset, or a configuration that
does not fit in memory) gets its error in its row; the others go on.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from optuna.storages import BaseStorage

from engine.dataset.spec import DataSpec
from engine.dataset.splits import SplitFacts
from engine.dataset.windows import PreparedData
from engine.errors import UserError
from engine.report.baselines import CONSTANT_PRIOR, LOGISTIC, Baseline, baselines
from engine.report.collect import DEFAULT_TOP_K, ExperimentResult, collect
from engine.report.compare import Comparison, compare_all
from engine.report.powerlaw import PowerLawFit, fit_power_law
from engine.report.retrain import SeedRun, pending, retrain_experiment, retrain_study_name
from engine.report.scores import THRESHOLD_FREE
from engine.report.splits import experiment_splits, splits_json
from engine.report.words import DriftFact, FitFact, VersusFact, loses_to_linear, say
from engine.train.config import RunOptions
from engine.train.result import TrialDoesNotFit

FitSource = Literal["test", "validation"]
SUMMARY_METRICS = THRESHOLD_FREE
MARGIN = "margin over logistic regression"


@dataclass(frozen=True)
class ReportOptions:
    seeds: int = 3
    top_k: int = DEFAULT_TOP_K  # configurations retrained per experiment
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
    runs: list[SeedRun] = field(default_factory=list)  # top configurations x seeds
    baselines: list[Baseline] = field(default_factory=list)
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

    def baseline(self, name: str) -> Baseline | None:
        return next((b for b in self.baselines if b.name == name), None)

    def versus(self) -> list[VersusFact]:
        by_name: dict[str, dict[str, Comparison]] = {}
        for c in self.comparisons:
            by_name.setdefault(c.baseline, {})[c.metric] = c
        return [VersusFact(m["bce"], m["roc_auc"]) for m in by_name.values()]


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
    margin_fits: dict[int, PowerLawFit] = field(default_factory=dict)
    headline: list[str] = field(default_factory=list)
    drift: list[DriftFact] = field(default_factory=list)

    def horizons(self) -> list[int]:
        return sorted({row.result.horizon for row in self.rows})


SeedCallback = Callable[[ExperimentResult, SeedRun], None]
StepCallback = Callable[[str], None]
PlanCallback = Callable[[int], None]
LabelLoader = Callable[[DataSpec], NDArray[np.float64]]


def build_report(
    storage: BaseStorage,
    campaign: str,
    options: ReportOptions = ReportOptions(),
    *,
    storage_label: str = "",
    load_data: Callable[[DataSpec, str], PreparedData] | None = None,
    load_labels: LabelLoader | None = None,
    on_seed: SeedCallback | None = None,
    on_step: StepCallback | None = None,
    on_plan: PlanCallback | None = None,
) -> ScalingReport:
    """Everything the report shows, computing only what the storage does not hold yet.

    `on_plan` hears first how many runs must be trained (the rest are stored).
    """
    results = collect(storage, campaign, options.top_k)
    prepared = _DataCache(load_data or _load_data, load_labels or _load_labels)
    seeds = list(range(options.seeds))
    retraining = options.retrain and options.seeds > 0
    if on_plan is not None:
        to_train = [pending(storage, e, seeds) for e in results if e.best is not None]
        on_plan(sum(to_train) if retraining else 0)
    rows: list[ExperimentRow] = []
    for exp in results:
        row = ExperimentRow(exp)
        rows.append(row)
        if exp.best is None:
            row.note = f"no complete trial yet ({exp.state})"
            continue
        device = options.device or exp.config.device
        run_options = RunOptions(
            device=device, precision=exp.config.precision, dropout_sites=exp.config.dropout_sites
        )
        try:
            if retraining:
                if on_step is not None:
                    trials = ", ".join(f"#{t.number} {t.architecture.label}" for t in exp.top)
                    on_step(f"{exp.name}: top trials {trials} x seeds 0..{options.seeds - 1}")
                row.retrain_study = retrain_study_name(exp.study_name)
                row.runs = retrain_experiment(
                    storage,
                    exp,
                    seeds,
                    functools.partial(prepared.get, exp.config.data, device),
                    run_options,
                    on_seed,
                )
            if options.baselines:
                row.baselines = prepared.baselines(exp.config.data, device)
                row.comparisons = compare_all(
                    exp.name, [r.test_metrics for r in row.runs], row.baselines
                )
        except (UserError, TrialDoesNotFit, torch.OutOfMemoryError) as error:
            row.error = (
                str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
            )
    source: FitSource = "test" if retraining else "validation"
    report = ScalingReport(
        campaign=campaign,
        storage=storage_label,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        options=options,
        rows=rows,
        fits=_fits(fit_points(rows, source), options),
        fit_source=source,
        warnings=data_spec_warnings(results),
        splits=experiment_splits(results),
        margin_fits=_fits(margin_points(rows), options) if source == "test" else {},
        drift=drift_facts(rows),
    )
    report.headline = headline(report)
    return report


def headline(report: ScalingReport) -> list[str]:
    """The sentences a reader must see first: losing to the linear baseline, the verdict
    per horizon, drift, then each experiment against each baseline."""
    versus = [v for row in report.rows for v in row.versus()]
    lines = []
    linear = loses_to_linear(versus)
    if linear is not None:
        lines.append(say(linear))
    lines += [say(FitFact(h, fit)) for h, fit in sorted(report.fits.items())]
    lines += [say(FitFact(h, fit, MARGIN)) for h, fit in sorted(report.margin_fits.items())]
    lines += [say(fact) for fact in report.drift]
    return lines


def versus_lines(report: ScalingReport) -> list[str]:
    """One sentence per experiment and baseline."""
    return [say(v) for row in report.rows for v in row.versus()]


def drift_facts(rows: list[ExperimentRow]) -> list[DriftFact]:
    """Per horizon, the train+validation and test label rates (from the constant prior
    of its first experiment with baselines)."""
    out: dict[int, DriftFact] = {}
    for row in rows:
        prior = row.baseline(CONSTANT_PRIOR)
        if prior is None or row.result.horizon in out:
            continue
        fitted, test = prior.test_metrics.get("prior"), prior.test_metrics.get("label_rate")
        if fitted is not None and test is not None:
            out[row.result.horizon] = DriftFact(row.result.horizon, fitted, test)
    return [out[h] for h in sorted(out)]


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


@dataclass(frozen=True)
class FitPoint:
    n_params: int
    loss: float
    size: str  # the experiment
    config: str  # the source trial within it


def fit_points(rows: list[ExperimentRow], source: FitSource) -> dict[int, list[FitPoint]]:
    """Points per horizon: one per run (test) or per top configuration (validation)."""
    points: dict[int, list[FitPoint]] = {}
    for row in rows:
        exp = row.result
        if exp.best is None:
            continue
        bucket = points.setdefault(exp.horizon, [])
        if source == "validation":
            bucket.extend(FitPoint(t.n_params, t.val_bce, exp.name, str(t.number)) for t in exp.top)
        else:
            bucket.extend(
                FitPoint(r.n_params, r.test_metrics.get("bce", math.nan), exp.name, str(r.source_trial))
                for r in row.runs
            )  # fmt: skip
    return points


def margin_points(rows: list[ExperimentRow]) -> dict[int, list[FitPoint]]:
    """Each run's test BCE minus its experiment's logistic regression test BCE."""
    points: dict[int, list[FitPoint]] = {}
    for row in rows:
        logistic = row.baseline(LOGISTIC)
        if logistic is None or not math.isfinite(logistic.test_metrics.get("bce", math.nan)):
            continue
        linear = logistic.test_metrics["bce"]
        points.setdefault(row.result.horizon, []).extend(
            FitPoint(r.n_params, r.test_metrics.get("bce", math.nan) - linear,
                     row.result.name, str(r.source_trial))
            for r in row.runs
        )  # fmt: skip
    return points


def _fits(points: dict[int, list[FitPoint]], options: ReportOptions) -> dict[int, PowerLawFit]:
    return {
        horizon: fit_power_law(
            [p.n_params for p in group],
            [p.loss for p in group],
            sizes=[p.size for p in group],
            configs=[p.config for p in group],
            n_boot=options.n_boot,
            level=options.level,
        )
        for horizon, group in sorted(points.items())
        if group
    }


def _load_data(spec: DataSpec, device: str) -> PreparedData:
    from engine.dataset.windows import prepare_data
    from engine.train.device import resolve_device

    return prepare_data(_frame(spec), spec, resolve_device(device))


def _load_labels(spec: DataSpec) -> NDArray[np.float64]:
    from engine.dataset.labels import make_labels

    return np.asarray(make_labels(_frame(spec), spec.labels).to_numpy(), dtype=np.float64)


def _frame(spec: DataSpec) -> Any:
    from engine.dataset.build import ensure_dataset
    from engine.dataset.manifest import load_processed

    ensure_dataset(spec.dataset, spec.tier, spec.version)
    frame, _ = load_processed(spec.dataset, spec.tier, spec.version)
    return frame


class _DataCache:
    """Prepared windows and baselines per (data spec, device): the experiments of one
    horizon share them, so they are built once."""

    def __init__(
        self, load: Callable[[DataSpec, str], PreparedData], load_labels: LabelLoader
    ) -> None:
        self._load = load
        self._load_labels = load_labels
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
            self._baselines[key] = baselines(self.get(spec, device), self._load_labels(spec))
        return self._baselines[key]


def report_dict(report: ScalingReport) -> dict[str, Any]:
    """A JSON-ready form of the whole report (written as report.json)."""
    return {
        "campaign": report.campaign,
        "storage": report.storage,
        "created": report.created,
        "seeds": report.options.seeds,
        "top_k": report.options.top_k,
        "fit_source": report.fit_source,
        "headline": report.headline,
        "versus": versus_lines(report),
        "warnings": report.warnings,
        "splits": splits_json(report),
        "fits": {
            str(h): {**fit.to_dict(), "sentence": say(FitFact(h, fit))}
            for h, fit in report.fits.items()
        },
        "margin_fits": {
            str(h): {**fit.to_dict(), "sentence": say(FitFact(h, fit, MARGIN))}
            for h, fit in report.margin_fits.items()
        },
        "drift": [
            {
                "horizon": d.horizon,
                "fitted_rate": d.fitted_rate,
                "test_rate": d.test_rate,
                "nats": d.nats,
                "sentence": say(d),
            }
            for d in report.drift
        ],
        "experiments": [_experiment_dict(row) for row in report.rows],
    }


def _experiment_dict(row: ExperimentRow) -> dict[str, Any]:
    exp = row.result
    return {
        "experiment": exp.name,
        "study": exp.study_name,
        "budget": exp.budget,
        "horizon": exp.horizon,
        "state": exp.state,
        "n_complete": exp.n_complete,
        "n_trials": exp.n_trials,
        "best_trial": None if exp.best is None else exp.best.number,
        "best_value": None if exp.best is None else exp.best.value,
        "top": [
            {
                "trial": t.number,
                "value": t.value,
                "val_bce": t.val_bce,
                "architecture": t.architecture.to_dict(),
                "n_params": t.n_params,
                "best_epoch": t.best_epoch,
            }
            for t in exp.top
        ],
        "retrain_study": row.retrain_study,
        "runs": [
            {
                "source_trial": r.source_trial,
                "seed": r.seed,
                "trial": r.trial_number,
                "n_params": r.n_params,
                "test_metrics": r.test_metrics,
            }
            for r in row.runs
        ],
        "baselines": [b.to_dict() for b in row.baselines],
        "comparisons": [c.to_dict() for c in row.comparisons],
        "error": row.error,
        "note": row.note,
    }
