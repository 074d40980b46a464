"""The power-law fit recovers known exponents and refuses to see scaling in flat data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.report.powerlaw import ALPHA_BOUND, alpha_text, fit_power_law

SIZES = np.repeat([1e5, 1e6, 1e7, 1e8, 1e9], 3)  # 5 sizes x 3 seeds of one configuration


@pytest.mark.parametrize(("alpha", "a", "c"), [(0.25, 5.0, 0.55), (0.1, 2.0, 0.3)])
def test_recovers_alpha_of_a_noisy_power_law(alpha: float, a: float, c: float) -> None:
    rng = np.random.default_rng(7)
    losses = a * SIZES ** (-alpha) + c + rng.normal(0, 0.004, len(SIZES))
    fit = fit_power_law(SIZES, losses, n_boot=500)
    assert fit.alpha_low is not None and fit.alpha_high is not None
    assert fit.alpha_low <= alpha <= fit.alpha_high
    assert fit.alpha_high - fit.alpha_low < 0.1  # the interval is informative
    assert fit.verdict == "scaling"
    assert fit.c == pytest.approx(c, abs=0.02)
    assert fit.predict(1e7) == pytest.approx(a * 1e7 ** (-alpha) + c, abs=0.01)


def test_exact_power_law_is_fitted_exactly() -> None:
    losses = 3.0 * SIZES ** (-0.3) + 0.5
    fit = fit_power_law(SIZES, losses, n_boot=100)
    assert fit.alpha == pytest.approx(0.3, abs=1e-4)
    assert fit.a == pytest.approx(3.0, rel=1e-3)
    assert fit.rmse < 1e-8


def test_flat_losses_give_no_evidence_of_scaling() -> None:
    rng = np.random.default_rng(11)
    verdicts = [
        fit_power_law(SIZES, 0.6 + rng.normal(0, 0.01, len(SIZES)), n_boot=400, seed=k).verdict
        for k in range(40)
    ]
    # 95% intervals, ~7% false "scaling" measured over 100s of flat campaigns: a rate
    # far above that means the interval is too narrow to trust.
    assert verdicts.count("no evidence of scaling") >= 34


def test_rising_losses_are_inverse_scaling() -> None:
    rng = np.random.default_rng(3)
    losses = 0.7 - 2.0 * SIZES ** (-0.2) + rng.normal(0, 0.003, len(SIZES))
    fit = fit_power_law(SIZES, losses, n_boot=500)
    assert fit.verdict == "inverse scaling"
    assert fit.alpha_high is not None and fit.alpha_high < 0
    assert "rises" in fit.summary()


def test_fewer_than_four_sizes_is_too_few_sizes_not_a_line() -> None:
    """Three sizes: a three-parameter curve passes through their means whatever they
    are, so no interval and no verdict, however many seeds."""
    three = np.repeat([1e5, 1e6, 1e7], 5)
    losses = 3.0 * three ** (-0.3) + 0.5 + np.random.default_rng(0).normal(0, 1e-4, 15)
    fit = fit_power_law(three, losses, n_boot=200)
    assert fit.verdict == "too few sizes" and fit.alpha_low is None
    assert fit.alpha == pytest.approx(0.3, abs=0.05)  # the curve is still fitted
    assert "too few sizes" in fit.summary() and "3 sizes" in fit.summary()
    two = fit_power_law([1e6, 1e6, 1e7, 1e7], [0.6, 0.61, 0.5, 0.52])
    assert two.verdict == "too few sizes" and math.isnan(two.alpha)
    four = fit_power_law(np.repeat([1e5, 1e6, 1e7, 1e8], 2), np.repeat([0.7, 0.6, 0.55, 0.52], 2))
    assert four.verdict != "too few sizes"


def test_alpha_at_the_edge_of_its_range_is_unbounded_never_a_value() -> None:
    """One step between the two smallest sizes and flat after: the best alpha runs to
    the edge of the range, and is said to be unbounded."""
    sizes = np.repeat([1e4, 1e5, 1e6, 1e7], 3)
    losses = np.where(sizes < 5e4, 0.7, 0.6) + np.tile([-0.001, 0.0, 0.001], 4)
    fit = fit_power_law(sizes, losses, n_boot=300)
    assert fit.at_bound
    assert alpha_text(fit.alpha) == "unbounded"
    assert "alpha = unbounded" in fit.summary()
    assert f"{ALPHA_BOUND:.3f}" not in fit.summary()
    assert alpha_text(-ALPHA_BOUND) == "-unbounded" and alpha_text(0.25) == "0.250"


def test_configuration_noise_widens_the_interval() -> None:
    """Flat truth with a large offset per configuration and tiny seed noise: resampling
    seeds alone would call a trend; the hierarchical interval contains 0 and is far
    wider than with the same points taken as 12 unrelated seeds of one configuration
    per size."""
    rng = np.random.default_rng(4)
    sizes, configs, n_params, losses = [], [], [], []
    for i, budget in enumerate([1e4, 2.5e4, 6.25e4, 1.5e5]):
        for j in range(3):
            offset = rng.normal(0, 0.02)
            for _ in range(3):
                sizes.append(i)
                configs.append(j)
                n_params.append(budget * (1 + 0.1 * j))
                losses.append(0.6 + offset + rng.normal(0, 0.001))
    fit = fit_power_law(n_params, losses, sizes=sizes, configs=configs, n_boot=600)
    assert fit.n_sizes == 4 and fit.n_configs == 12 and fit.n_points == 36
    assert fit.verdict == "no evidence of scaling"
    assert fit.alpha_low is not None and fit.alpha_high is not None
    assert fit.alpha_low < 0 < fit.alpha_high


def test_non_finite_points_are_ignored() -> None:
    losses = list(3.0 * SIZES ** (-0.3) + 0.5)
    fit = fit_power_law([*SIZES, 1e6, math.nan], [*losses, math.inf, 0.5], n_boot=50)
    assert fit.n_points == len(SIZES)
    assert fit.alpha == pytest.approx(0.3, abs=1e-4)
