"""From stored runs and baselines to the report's statistics: the compare and trend steps.

- `points`: every run as a trend point, placed by its factors (horizon, task, tier,
  dataset, period, experiment); its size is the experiment's parameter budget.
- `comparisons`: each experiment against each baseline, per period and pooled, by the
  paired test of engine/report/compare.py, Holm-adjusted over the report.
- `trends`: the trend per decade (engine/report/trend.py) for every level of every factor
  with more than one level (the horizon always), pooled over test periods and per
  period; `differences`: whether two levels' trends differ; `exponents`: the power law's
  exponent per horizon where the sizes determine it (engine/report/powerlaw.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.report.baselines import Baseline
from engine.report.compare import Comparison, PairedGap, adjust, paired_gap, window_bce
from engine.report.powerlaw import Exponent, fit_exponent
from engine.report.trend import Point, Trend, TrendDifference, by_factor, size_means, trend
from engine.report.trend import trend_difference as _trend_difference

if TYPE_CHECKING:
    from engine.report.build import ExperimentRow

ALL_PERIODS = 0  # the period "level" of a pooled trend
TREND_FACTORS = ("horizon", "task", "tier", "dataset")  # grouped when they vary


def factors_of(row: ExperimentRow) -> dict[str, Hashable]:
    cfg = row.result.config
    return {
        "horizon": cfg.horizon,
        "task": cfg.task,
        "tier": cfg.data.tier,
        "dataset": cfg.data.dataset,
        "experiment": row.result.name,
    }


def points(rows: Sequence[ExperimentRow], source: str = "test") -> list[Point]:
    """One point per run (test BCE) or per top configuration (its validation BCE)."""
    out: list[Point] = []
    for row in rows:
        exp = row.result
        if exp.best is None:
            continue
        base = factors_of(row)
        if source == "validation":
            out += [Point(exp.budget, t.n_params, str(t.number), t.val_bce,
                          {**base, "period": ALL_PERIODS}) for t in exp.top]  # fmt: skip
            continue
        out += [
            Point(exp.budget, r.n_params, str(r.source_trial), r.test_metrics.get("bce", math.nan),
                  {**base, "period": r.period})
            for r in row.runs
        ]  # fmt: skip
    return out


# ---- compare ------------------------------------------------------------------------------


def _day_gaps(row: ExperimentRow, base: Baseline) -> tuple[np.ndarray, np.ndarray]:
    """Per-window (runs' mean BCE - baseline BCE) and each run's mean gap, one period."""
    runs = [r for r in row.runs if r.period == base.period and r.test_days == base.test_days]
    labels = np.asarray(base.test_labels, dtype=np.float64)
    if not runs or not base.test_probs or len(labels) != len(base.test_probs):
        return np.zeros(0), np.zeros(0)
    baseline_loss = window_bce(np.asarray(base.test_probs), labels)
    losses = np.array([window_bce(np.asarray(r.test_probs), labels) for r in runs])
    gaps = losses - baseline_loss[None, :]
    return gaps.mean(axis=0), gaps.mean(axis=1)


def _auc(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def compare_row(row: ExperimentRow) -> list[Comparison]:
    """The row's experiment against each baseline, pooled and per period (unadjusted)."""
    out = []
    names = list(dict.fromkeys(b.name for b in row.baselines))
    for name in names:
        per = sorted((b for b in row.baselines if b.name == name), key=lambda b: b.period)
        series = [_day_gaps(row, b) for b in per]
        horizon = row.result.horizon
        pooled = paired_gap([d for d, _ in series], [r for _, r in series], horizon)
        periods = tuple(paired_gap([d], [r], horizon) for d, r in series)
        model_auc = _auc([r.test_metrics.get("roc_auc", math.nan) for r in row.runs])
        base_auc = _auc([b.test_metrics.get("roc_auc", math.nan) for b in per])
        out.append(Comparison(row.result.name, name, per[0].oracle, horizon, row.result.budget,
                              pooled, periods, model_auc, base_auc))  # fmt: skip
    return out


def comparisons(rows: Sequence[ExperimentRow]) -> list[Comparison]:
    """Every experiment x baseline, Holm-adjusted together (engine/report/compare.py)."""
    return adjust([c for row in rows for c in compare_row(row)])


# ---- trend ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendRow:
    """The trend of one level of one factor, pooled over periods (period 0) or in one."""

    factor: str
    level: Hashable
    period: int
    trend: Trend

    @property
    def label(self) -> str:
        level = f"h{self.level}" if self.factor == "horizon" else str(self.level)
        return level if self.period == ALL_PERIODS else f"{level} P{self.period}"

    def to_dict(self) -> dict[str, Any]:
        return {"factor": self.factor, "level": self.level, "period": self.period,
                **self.trend.to_dict()}  # fmt: skip


def varying(pts: Sequence[Point]) -> list[str]:
    """The factors to group trends by: the horizon always, others when they vary."""
    return [f for f in TREND_FACTORS
            if f == "horizon" or len({p.factors.get(f) for p in pts}) > 1]  # fmt: skip


def trends(pts: Sequence[Point], level: float = 0.95) -> list[TrendRow]:
    out = []
    periods = sorted({int(p.factors.get("period", 0)) for p in pts} - {ALL_PERIODS})
    for factor in varying(pts):
        for key, group in by_factor(pts, factor).items():
            out.append(TrendRow(factor, key, ALL_PERIODS, trend(group, level)))
            if len(periods) > 1:
                for period in periods:
                    part = [p for p in group if p.factors.get("period") == period]
                    out.append(TrendRow(factor, key, period, trend(part, level)))
    return out


def differences(pts: Sequence[Point], level: float = 0.95) -> list[TrendDifference]:
    """For each varying factor, every pair of its levels: do their trends differ?"""
    out = []
    for factor in varying(pts):
        groups = by_factor(pts, factor)
        for a, b in itertools.combinations(groups, 2):
            names = (f"h{a}", f"h{b}") if factor == "horizon" else (a, b)
            out.append(_trend_difference(groups[b], groups[a], names=(names[1], names[0]),
                                         level=level))  # fmt: skip
    return out


def exponents(pts: Sequence[Point], level: float = 0.95) -> dict[Hashable, Exponent]:
    return {key: fit_exponent(size_means(group), level)
            for key, group in by_factor(pts, "horizon").items()}  # fmt: skip


def gap_dict(gap: PairedGap) -> dict[str, Any]:
    return asdict(gap)
