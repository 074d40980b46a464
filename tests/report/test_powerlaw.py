"""The exponent of a * N^-alpha + c: shown only where the sizes determine it; never
"unbounded", a grid artefact near 0, or a negative floor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.report.powerlaw import fit_exponent
from engine.report.trend import SizeMean


def means(values: np.ndarray, n: np.ndarray) -> list[SizeMean]:
    return [SizeMean(f"s{i}", math.log10(x), float(v), 3, 9, 1e-6)
            for i, (x, v) in enumerate(zip(n, values, strict=True))]  # fmt: skip


N8 = 1e4 * 2.0 ** np.arange(8)


def test_a_clean_power_law_over_enough_sizes_gives_its_exponent() -> None:
    rng = np.random.default_rng(1)
    values = 5 * N8**-0.3 + 0.5 + rng.normal(0, 0.001, 8)
    e = fit_exponent(means(values, N8))
    assert e.determined and e.low is not None and e.high is not None
    assert e.low <= 0.3 <= e.high and e.low > 0 and e.high < 2
    assert e.c is not None and e.c >= 0 and e.c == pytest.approx(0.5, abs=0.05)
    assert e.predict(1e5) == pytest.approx(5 * 1e5**-0.3 + 0.5, abs=0.005)
    assert e.text().startswith("alpha = 0.") and "profile interval [" in e.text()


def test_an_exact_power_law_is_its_own_interval() -> None:
    e = fit_exponent(means(3 * N8**-0.3 + 0.5, N8))
    assert e.determined and e.alpha == pytest.approx(0.3, abs=1e-3)


@pytest.mark.parametrize("sizes", [3, 4])
def test_four_sizes_or_fewer_never_print_an_exponent(sizes: int) -> None:
    rng = np.random.default_rng(sizes)
    for _ in range(50):
        values = 5 * N8[:sizes] ** -0.3 + 0.5 + rng.normal(0, 0.001, sizes)
        e = fit_exponent(means(values, N8[:sizes]))
        assert not e.determined and e.alpha is None
        assert e.text() == f"exponent not determined ({sizes} sizes: a floor and an exponent " \
            "need 5 sizes or more)"  # fmt: skip


def test_a_log_linear_decline_is_not_an_exponent() -> None:
    """The val_auc campaign of issue 22 printed alpha = 0.000, a = 41573.9, c = -41573.5:
    a straight decline in log N is the alpha -> 0 limit with a negative floor."""
    values = 0.7 - 0.02 * np.log10(N8)
    e = fit_exponent(means(values, N8))
    assert not e.determined
    assert "0.000" not in e.text() and "0.001" not in e.text() and "unbounded" not in e.text()


def test_flat_or_noisy_sizes_say_not_determined_with_a_reason() -> None:
    rng = np.random.default_rng(5)
    flat = fit_exponent(means(0.6 + rng.normal(0, 0.01, 8), N8))
    assert not flat.determined and flat.reason
    rising = fit_exponent(means(0.6 + 0.02 * np.log10(N8), N8))
    assert not rising.determined and "do not fall" in rising.reason
    step = np.where(N8 < 2e5, 0.7, 0.6)  # one step between sizes, not a power law
    e = fit_exponent(means(step, N8))
    assert not e.determined or (e.high is not None and e.high < 2)
