"""Each experiment's retrained runs against each baseline, on the same test windows.

A run is one (configuration, seed) retraining, so the spread over runs holds both the
configuration and the seed noise. Per baseline and metric (test BCE: lower is better;
ROC-AUC: higher is better) the outcome is

- "beats": every run is better than the baseline,
- "loses to": every run is worse (or equal),
- "mixed": some are better, some not (how many is said),
- "n/a": the metric is undefined for the baseline (a constant has no ROC-AUC) or for
  every run.

Requiring every run, not the mean, is deliberate: with 9 runs the chance that all beat a
baseline they are no better than is about 0.2%, and a mean can hide a configuration that
does not.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Literal

from engine.report.baselines import Baseline

Outcome = Literal["beats", "loses to", "mixed", "n/a"]
COMPARED_METRICS = ("bce", "roc_auc")
LOWER_IS_BETTER = {"bce": True, "roc_auc": False}


@dataclass(frozen=True)
class Comparison:
    """The runs of one experiment against one baseline on one metric."""

    experiment: str
    baseline: str
    oracle: bool
    metric: str
    baseline_value: float
    model_mean: float
    model_sd: float  # over runs (configurations x seeds); NaN with one run
    n_runs: int  # runs where the metric is defined
    n_better: int
    outcome: Outcome

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(experiment: str, values: list[float], baseline: Baseline, metric: str) -> Comparison:
    """`values`: the metric of each run; NaN runs are left out (not counted as losses)."""
    defined = [v for v in values if math.isfinite(v)]
    reference = baseline.test_metrics.get(metric, math.nan)
    mean = statistics.fmean(defined) if defined else math.nan
    sd = statistics.stdev(defined) if len(defined) > 1 else math.nan
    outcome: Outcome
    if not defined or not math.isfinite(reference):
        better, outcome = 0, "n/a"
    else:
        lower = LOWER_IS_BETTER[metric]
        better = sum((v < reference) if lower else (v > reference) for v in defined)
        outcome = _outcome(better, len(defined))
    return Comparison(
        experiment, baseline.name, baseline.oracle, metric, reference, mean, sd,
        len(defined), better, outcome,
    )  # fmt: skip


def _outcome(better: int, runs: int) -> Outcome:
    if better == runs:
        return "beats"
    return "loses to" if better == 0 else "mixed"


def compare_all(
    experiment: str, runs: list[dict[str, float]], baselines: list[Baseline]
) -> list[Comparison]:
    """Every baseline x COMPARED_METRICS for one experiment's runs (their test metrics)."""
    return [
        compare(experiment, [r.get(metric, math.nan) for r in runs], baseline, metric)
        for baseline in baselines
        for metric in COMPARED_METRICS
    ]
