"""The verdicts' calibration on simulated campaigns, small (bench/report_calibration.py
prints the full tables quoted in docs/report.md): the trend's false verdicts and coverage
at 4 and 6 sizes with noise dominated at the size and at the seed level, and the paired
comparison's false differences. The bounds leave room for the smaller samples."""

from __future__ import annotations

import pytest

from tests.report.calibration import calibrate_comparison, calibrate_trend


@pytest.mark.parametrize("mix", ["size", "seed"])
@pytest.mark.parametrize("n_sizes", [4, 6])
def test_flat_truth_is_rarely_a_trend_and_the_slope_is_covered(n_sizes: int, mix: str) -> None:
    result = calibrate_trend(n_sizes, mix, campaigns=800, seed=n_sizes)
    # the full bench: at most 5%; 800 campaigns have a +-1.5% sampling error
    assert result.false_total <= 0.065, result.row()
    assert result.coverage >= 0.93, result.row()
    if n_sizes == 6:
        assert result.power >= 0.3, result.row()  # not so wide that it never says anything


def test_the_paired_comparison_holds_its_level() -> None:
    false, power = calibrate_comparison(5, campaigns=150, seed=3)
    assert false <= 0.12 and power >= 0.3
