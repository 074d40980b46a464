"""Experiments against baselines: a paired test over test windows, Holm-adjusted, and
words only where the adjusted interval excludes 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from engine.report.compare import (
    Comparison,
    adjust,
    batch_days,
    batch_means,
    holm_levels,
    paired_gap,
    window_bce,
)


def test_window_bce_is_the_per_window_loss() -> None:
    losses = window_bce(np.array([0.8, 0.2, 0.0]), np.array([1.0, 1.0, 0.0]))
    assert losses[0] == pytest.approx(-math.log(0.8)) and losses[1] == pytest.approx(-math.log(0.2))
    assert 0 < losses[2] < 1e-6  # clipped, finite


def test_batches_are_at_least_ten_horizons_and_stay_inside_periods() -> None:
    assert batch_days(1) == 30 and batch_days(5) == 50
    series = [np.arange(100.0), np.arange(100.0) + 1000]
    means = batch_means(series, 5)
    assert len(means) == 4 and means[1] < 1000 <= means[2]  # no batch crosses periods


def test_a_clear_gap_is_a_word_and_the_interval_is_t_on_batch_means() -> None:
    rng = np.random.default_rng(0)
    days = [0.01 + rng.normal(0, 0.02, 300)]
    gap = paired_gap(days, [np.zeros(0)], horizon=1)
    means = batch_means(days, 1)
    se = np.std(means, ddof=1) / math.sqrt(len(means))
    assert gap.batches == 10 and gap.df == 9 and gap.se == pytest.approx(se)
    half = stats.t.ppf(0.975, 9) * se
    assert (gap.low, gap.high) == pytest.approx((gap.gap - half, gap.gap + half))
    assert gap.word == "loses to" and gap.low > 0  # positive gap: the model's loss is higher
    assert paired_gap([-d for d in days], [np.zeros(0)], 1).word == "beats"
    quiet = paired_gap([rng.normal(0, 0.02, 300)], [np.zeros(0)], 1)
    assert quiet.word == "no detectable difference" and quiet.low < 0 < quiet.high


def test_the_spread_of_runs_widens_the_interval() -> None:
    rng = np.random.default_rng(1)
    days = [0.003 + rng.normal(0, 0.01, 300)]
    alone = paired_gap(days, [np.zeros(0)], 1)
    runs = paired_gap(days, [np.array([-0.05, 0.0, 0.05])], 1)
    assert runs.se > alone.se and runs.n_runs == 3
    assert runs.se**2 == pytest.approx(alone.se**2 + np.var([-0.05, 0, 0.05], ddof=1) / 3)


def test_holm_levels_are_holms_procedure() -> None:
    p = [0.001, 0.04, 0.012, 0.3, math.nan]
    levels = holm_levels(p, 0.05)
    # sorted: 0.001 at .05/4, 0.012 at .05/3, 0.04 at .05/2 fails -> 0.04 and 0.3 at .025
    assert levels[0] == pytest.approx(0.0125) and levels[2] == pytest.approx(0.05 / 3)
    assert levels[1] == pytest.approx(0.025) and levels[3] == pytest.approx(0.025)
    assert math.isnan(levels[4])
    rejected = [pi <= lv for pi, lv in zip(p[:4], levels[:4], strict=True)]
    assert rejected == list(multipletests(p[:4], 0.05, method="holm")[0])


def comparison(gap_days: np.ndarray, name: str, oracle: bool = False) -> Comparison:
    gap = paired_gap([gap_days], [np.zeros(0)], 1)
    return Comparison("e", name, oracle, 1, "10K", gap, (gap,), 0.6, 0.5)


def test_words_come_from_the_holm_adjusted_interval() -> None:
    """A gap significant alone is not significant among many: its word follows the
    adjusted interval, which agrees with statsmodels' Holm-adjusted p-value."""
    rng = np.random.default_rng(2)
    alone = comparison(0.004 + rng.normal(0, 0.02, 300), "b0")
    assert alone.pooled.word == "loses to"
    others = [comparison(rng.normal(0, 0.02, 300), f"b{k}") for k in range(1, 20)]
    oracle = comparison(rng.normal(0, 0.02, 300), "oracle", oracle=True)
    adjusted = adjust([alone, *others, oracle])
    first = adjusted[0]
    assert first.holm_m == 20 and first.pooled.level_alpha < 0.05
    for c in adjusted[:-1]:
        excluded = c.pooled.low > 0 or c.pooled.high < 0
        assert excluded == (c.word in ("beats", "loses to")) == (c.pooled.p_holm <= 0.05)
    assert adjusted[-1].word == "n/a" and adjusted[-1].pooled.level_alpha == 0.05
    assert adjusted[-1].holm_m == 0
