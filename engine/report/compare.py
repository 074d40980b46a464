"""Each experiment against each baseline: a paired test over test days, Holm-adjusted.

For one experiment and one baseline, on every test window of every period: the model's
loss on that window (its runs' per-window BCEs averaged: configurations x seeds of that
period) minus the baseline's. Negative: the model is better. The gap is the mean of those
differences over all test windows of all periods (`paired_gap`).

Its variance has two parts:
- test days: a Diebold-Mariano test whose long-run variance comes from non-overlapping
  batch means (the "fixed-b" form of a HAC estimator): each period's series is cut into
  batches of at least `batch_days` = max(10 h, 30) days (an h-day label overlaps its
  h - 1 neighbours, and loss regimes last longer), never across a period boundary, and
  the variance of the gap is that of the batch means over their number, read on
  t(B - 1). Newey-West (statsmodels, with its small-sample correction) was tried first
  and measured in bench/report_calibration.py on simulated day series (overlapping
  labels, AR(1) regimes, heavy tails): 7.4-9.0% false differences at a nominal 5% for
  700 days, whatever its lag rule; batch means held 5-6%.
- the runs: which configuration and seed were trained is itself noise. The spread of
  the runs' mean gaps within a period, over their number, weighted by the period's share
  of the days, is added (a gap that one lucky seed made is not a finding).

Many comparisons in one report: Holm's step-down procedure over every experiment x
baseline pair (`holm_levels`): the k-th smallest p-value is tested at alpha / (m - k + 1)
until one fails, the rest at the level of the first that failed. Each interval is drawn
at its hypothesis' Holm level, so "beats" / "loses to" is said exactly when its adjusted
interval excludes 0 (by the duality of the t interval and its p-value), otherwise "no
detectable difference (gap X [lo, hi])". The oracle constant is a reference: never in
the family, never a word. ROC-AUC is described (each side's value, the difference), not
tested: it is not a mean over windows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats

Word = Literal["beats", "loses to", "no detectable difference", "n/a"]
FAMILY_ALPHA = 0.05
EPS = 1e-7

FloatArray = NDArray[np.float64]


def window_bce(probs: FloatArray, labels: FloatArray) -> FloatArray:
    """Per-window binary cross-entropy (probabilities clipped to [EPS, 1 - EPS])."""
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(labels, dtype=np.float64)
    return np.asarray(-(y * np.log(p) + (1 - y) * np.log(1 - p)), dtype=np.float64)


def batch_days(horizon: int) -> int:
    """Days per batch of the long-run variance (module doc)."""
    return max(10 * horizon, 30)


def batch_means(series: Sequence[FloatArray], horizon: int) -> FloatArray:
    """Means of consecutive batches of each period's series (near-equal lengths of at
    least `batch_days`; a period shorter than that is one batch)."""
    out: list[float] = []
    for days in series:
        k = max(1, len(days) // batch_days(horizon))
        out += [float(b.mean()) for b in np.array_split(np.asarray(days, np.float64), k)]
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class PairedGap:
    """Mean per-window loss of the model minus the baseline's, with its test."""

    gap: float
    se: float
    p_value: float
    n_windows: int
    n_runs: int
    batches: int  # batch means behind the test-day variance
    df: int
    level_alpha: float = FAMILY_ALPHA  # two-sided level the interval is drawn at
    p_holm: float = math.nan  # Holm-adjusted p-value in its family (statsmodels)
    low: float = math.nan
    high: float = math.nan
    word: Word = "n/a"

    def at(self, alpha: float) -> PairedGap:
        """This gap with its interval drawn at two-sided level `alpha`, and its word."""
        if not math.isfinite(self.se):
            return PairedGap(**{**asdict(self), "level_alpha": alpha})
        t = float(stats.t.ppf(1 - alpha / 2, self.df))
        low, high = self.gap - t * self.se, self.gap + t * self.se
        word: Word = "no detectable difference"
        if high < 0:
            word = "beats"
        elif low > 0:
            word = "loses to"
        fields = {**asdict(self), "level_alpha": alpha, "low": low, "high": high, "word": word}
        return PairedGap(**fields)

    def text(self, digits: int = 4) -> str:
        if not math.isfinite(self.low):
            return f"gap {self.gap:+.{digits}f}" if math.isfinite(self.gap) else "n/a"
        return f"gap {self.gap:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_gap(
    day_gaps: Sequence[FloatArray],
    run_gaps: FloatArray | Sequence[FloatArray],
    horizon: int,
    alpha: float = FAMILY_ALPHA,
) -> PairedGap:
    """The pooled gap over periods: `day_gaps[p]` is period p's per-window series (runs'
    mean loss minus the baseline's), `run_gaps[p]` each of its runs' mean gap (empty or
    one run: no run part). Its interval is drawn at `alpha` (module doc)."""
    series = [np.asarray(d, dtype=np.float64) for d in day_gaps if len(d)]
    if not series:
        return PairedGap(math.nan, math.nan, math.nan, 0, 0, 0, 0)
    pooled = np.concatenate(series)
    n = len(pooled)
    means = batch_means(series, horizon)
    b = len(means)
    variance = float(np.var(means, ddof=1)) / b if b > 1 else math.nan
    per_period = [np.asarray(r, dtype=np.float64) for r in _per_period(run_gaps, len(series))]
    n_runs = 0
    for days, runs in zip(series, per_period, strict=False):
        runs = runs[np.isfinite(runs)]
        n_runs += len(runs)
        if len(runs) > 1:
            share = len(days) / n
            variance += share**2 * float(np.var(runs, ddof=1)) / len(runs)
    gap = float(pooled.mean())
    se = math.sqrt(variance) if variance > 0 else math.nan
    df = b - 1
    p = 2 * float(stats.t.sf(abs(gap) / se, df)) if math.isfinite(se) else math.nan
    return PairedGap(gap, se, p, n, n_runs, b, df).at(alpha)


def _per_period(run_gaps: FloatArray | Sequence[FloatArray], periods: int) -> list[FloatArray]:
    if isinstance(run_gaps, np.ndarray) and run_gaps.ndim == 1:
        return [run_gaps] if periods == 1 else [np.zeros(0)] * periods
    return [np.asarray(r, dtype=np.float64) for r in run_gaps]


def holm_levels(p_values: Sequence[float], alpha: float = FAMILY_ALPHA) -> list[float]:
    """Per hypothesis, the two-sided level at which Holm's procedure tests it: the k-th
    smallest p at alpha / (m - k + 1) while they are rejected, then every later one at
    the level of the first that was not. NaN p-values are not in the family (NaN)."""
    finite = [(p, i) for i, p in enumerate(p_values) if math.isfinite(p)]
    m = len(finite)
    out = [math.nan] * len(p_values)
    stop: float | None = None
    for rank, (p, index) in enumerate(sorted(finite)):
        level = alpha / (m - rank) if stop is None else stop
        if stop is None and p > level:
            stop = level
        out[index] = level
    return out


@dataclass(frozen=True)
class Comparison:
    """One experiment against one baseline: the BCE gap (tested, pooled over periods and
    per period) and the ROC-AUC (described)."""

    experiment: str
    baseline: str
    oracle: bool
    horizon: int
    size: str
    pooled: PairedGap
    periods: tuple[PairedGap, ...]
    model_auc: float  # mean over runs and periods
    baseline_auc: float  # mean over periods
    holm_m: int = 0  # hypotheses in the family the pooled test was adjusted over

    @property
    def word(self) -> Word:
        return "n/a" if self.oracle else self.pooled.word

    def period_words(self) -> list[Word]:
        return [g.word for g in self.periods]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["word"] = self.word
        return out


def holm_adjusted(p_values: Sequence[float], alpha: float = FAMILY_ALPHA) -> list[float]:
    """Holm-adjusted p-values (statsmodels' multipletests); NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests

    finite = [i for i, p in enumerate(p_values) if math.isfinite(p)]
    out = [math.nan] * len(p_values)
    if finite:
        adjusted = multipletests([p_values[i] for i in finite], alpha, method="holm")[1]
        for i, value in zip(finite, adjusted, strict=True):
            out[i] = float(value)
    return out


def adjust(comparisons: list[Comparison], alpha: float = FAMILY_ALPHA) -> list[Comparison]:
    """Holm over the pooled tests of every non-oracle comparison, and separately over
    every per-period test; each interval redrawn at its level (oracle rows: unadjusted
    95%, no word)."""
    tested = [c for c in comparisons if not c.oracle]
    pooled_p = [c.pooled.p_value for c in tested]
    pooled = list(zip(holm_levels(pooled_p, alpha), holm_adjusted(pooled_p, alpha), strict=True))
    flat = [(i, k) for i, c in enumerate(tested) for k in range(len(c.periods))]
    per_p = [tested[i].periods[k].p_value for i, k in flat]
    per = zip(holm_levels(per_p, alpha), holm_adjusted(per_p, alpha), strict=True)
    level_of = dict(zip(flat, per, strict=True))
    m = sum(math.isfinite(p) for p in pooled_p)
    out: list[Comparison] = []
    index = 0
    for c in comparisons:
        if c.oracle:
            out.append(_redraw(c, (alpha, math.nan), [(alpha, math.nan)] * len(c.periods), 0))
            continue
        levels = [level_of[(index, k)] for k in range(len(c.periods))]
        out.append(_redraw(c, pooled[index], levels, m))
        index += 1
    return out


Level = tuple[float, float]  # (two-sided level of the interval, Holm-adjusted p)


def _redraw(c: Comparison, pooled: Level, periods: list[Level], m: int) -> Comparison:
    def at(gap: PairedGap, level: Level) -> PairedGap:
        if not math.isfinite(level[0]):
            return gap
        return dataclasses.replace(gap.at(level[0]), p_holm=level[1])

    return Comparison(
        c.experiment, c.baseline, c.oracle, c.horizon, c.size, at(c.pooled, pooled),
        tuple(at(g, lv) for g, lv in zip(c.periods, periods, strict=True)),
        c.model_auc, c.baseline_auc, m,
    )  # fmt: skip
