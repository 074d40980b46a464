"""The trend per decade of parameters: size means, the slope and its interval, verdicts,
and the generic factor tools (trend per level, difference between levels, pivot)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from engine.report.trend import (
    Point,
    SizeMean,
    by_factor,
    min_detectable,
    pivot,
    size_means,
    trend,
    trend_difference,
    trend_of_means,
    trends_by,
)

BUDGETS = [10_000 * 2**i for i in range(6)]


def campaign(
    slope: float, *, horizon: int = 1, noise: float = 0.0, seed: int = 0, sizes: int = 6
) -> list[Point]:
    """3 configurations x 2 seeds per size; value = 0.6 + slope per decade + noise."""
    rng = np.random.default_rng(seed)
    out = []
    for budget in BUDGETS[:sizes]:
        for j, n in enumerate((budget * 0.9, budget, budget * 1.1)):
            for _ in range(2):
                value = 0.6 + slope * math.log10(n / 1e4) + rng.normal(0, noise)
                out.append(Point(f"{budget // 1000}K", n, str(j), value, {"horizon": horizon}))
    return out


def test_size_means_weigh_configurations_equally() -> None:
    pts = [
        Point("10K", 1e4, "a", 1.0), Point("10K", 1e4, "a", 3.0), Point("10K", 1e4, "a", 2.0),
        Point("10K", 1e5, "b", 4.0),  # one run, one configuration
        Point("1K", 1e3, "x", 0.5), Point("1K", 1e3, "x", math.nan),  # NaN left out
    ]  # fmt: skip
    small, big = size_means(pts)
    assert (small.size, small.mean, small.n_runs) == ("1K", 0.5, 1)
    assert math.isnan(small.within_var)  # one run: nothing known about its spread
    assert big.mean == pytest.approx((2.0 + 4.0) / 2)  # not (1+3+2+4)/4
    assert big.log10_n == pytest.approx(4.5)
    assert big.within_var == pytest.approx(np.var([2.0, 4.0], ddof=1) / 2)


def test_an_exact_line_is_recovered_with_its_verdict() -> None:
    t = trend(campaign(-0.02))
    assert t.slope == pytest.approx(-0.02, abs=1e-9)
    assert t.verdict == "loss falls with size" and t.high < 0
    assert (t.n_sizes, t.n_configs, t.n_runs, t.df) == (6, 18, 36, 4)
    rising = trend(campaign(+0.01, noise=0.0005))
    assert rising.verdict == "loss rises with size" and rising.low > 0


def test_the_interval_is_t_of_s_minus_2_on_size_means_widened_by_within_variance() -> None:
    pts = campaign(0.0, noise=0.01, seed=3)
    means = size_means(pts)
    x = np.array([m.log10_n for m in means])
    y = np.array([m.mean for m in means])
    fit = stats.linregress(x, y)  # scipy's own slope and its standard error
    within = float(np.mean([m.within_var for m in means]))
    sxx = float(np.sum((x - x.mean()) ** 2))
    se = math.sqrt(fit.stderr**2 + within / sxx)
    t = trend(pts)
    assert t.slope == pytest.approx(fit.slope) and t.se == pytest.approx(se)
    half = stats.t.ppf(0.975, len(means) - 2) * se
    assert (t.low, t.high) == pytest.approx((fit.slope - half, fit.slope + half))
    assert t.min_detectable == pytest.approx(min_detectable(se, 4))


def test_flat_noise_is_no_detectable_trend_and_few_sizes_are_said() -> None:
    assert trend(campaign(0.0, noise=0.01, seed=1)).verdict == "no detectable trend"
    two = trend(campaign(-0.05, sizes=2))
    assert two.verdict == "too few sizes" and math.isnan(two.slope) and two.n_sizes == 2
    assert trend(campaign(-0.05, sizes=3)).df == 1  # three sizes: one degree of freedom


def test_min_detectable_slope_has_80_percent_power() -> None:
    """At the returned slope a two-sided t test at 5% rejects about 80% of the time."""
    se, df = 0.01, 4
    delta = min_detectable(se, df)
    crit = stats.t.ppf(0.975, df)
    power = 1 - stats.nct.cdf(crit, df, delta / se) + stats.nct.cdf(-crit, df, delta / se)
    assert power == pytest.approx(0.8, abs=0.03)


def test_trends_by_any_factor_and_their_difference() -> None:
    pts = campaign(-0.03, horizon=5) + campaign(0.0, horizon=1, noise=0.001)
    by = trends_by(pts, "horizon")
    assert set(by) == {1, 5} and by[5].verdict == "loss falls with size"
    assert set(by_factor(pts, "horizon")[1][0].factors) == {"horizon"}
    groups = by_factor(pts, "horizon")
    d = trend_difference(groups[5], groups[1], names=("h5", "h1"))
    assert d.paired and d.n_sizes == 6 and d.verdict == "differ"
    assert d.difference == pytest.approx(-0.03, abs=0.002) and d.high < 0
    same = trend_difference(groups[1], campaign(0.0, noise=0.001, seed=9))
    assert same.verdict == "no detectable difference" and same.low < 0 < same.high


def test_a_difference_without_shared_sizes_uses_welch() -> None:
    a = [p for p in campaign(-0.03, noise=0.001) if p.size in ("10K", "20K", "40K")]
    b = [Point(p.size + "x", p.n_params * 1.5, p.config, p.value) for p in
         campaign(0.0, noise=0.001, seed=4) if p.size in ("80K", "160K", "320K")]  # fmt: skip
    d = trend_difference(a, b)
    assert not d.paired and 1 <= d.df <= 2 and d.n_sizes == 3


def test_pivot_lays_any_value_over_two_factors() -> None:
    records = [("h1", "10K", 0.1), ("h1", "20K", 0.2), ("h5", "20K", -0.1)]
    rows, cols, m = pivot(records, lambda r: r[0], lambda r: r[1], lambda r: r[2])
    assert rows == ["h1", "h5"] and cols == ["10K", "20K"]
    assert m[0].tolist() == [0.1, 0.2] and math.isnan(m[1, 0]) and m[1, 1] == -0.1


def test_the_calibration_simulator_computes_what_size_means_computes() -> None:
    """tests/report/calibration.py simulates size means with numpy; they must be the
    ones `size_means` gives on the same runs."""
    rng = np.random.default_rng(0)
    values = rng.normal(0.6, 0.01, (3, 4))  # 3 configurations x 4 runs of one size
    pts = [Point("s", 1e4 * (1 + j / 10), str(j), float(v)) for j in range(3)
           for v in values[j]]  # fmt: skip
    m = size_means(pts)[0]
    config_means = values.mean(axis=1)
    assert m.mean == pytest.approx(config_means.mean())
    assert m.within_var == pytest.approx(np.var(config_means, ddof=1) / 3)
    assert trend_of_means([m]).verdict == "too few sizes"
    assert isinstance(m, SizeMean)
