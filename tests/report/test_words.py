"""Every sentence of the report comes from `engine.report.words.say`: one test each, and
each judgement names its test and level."""

from __future__ import annotations

import math

import numpy as np

from engine.report.baselines import CONSTANT_PRIOR, LOGISTIC, ORACLE, PERSISTENCE
from engine.report.compare import Comparison, adjust, paired_gap
from engine.report.powerlaw import fit_exponent
from engine.report.trend import Point, size_means, trend, trend_difference
from engine.report.words import (
    BaselineSummaryFact,
    DifferenceFact,
    DriftFact,
    TrendFact,
    VersusFact,
    say,
    summaries,
    verdict_text,
)

RNG = np.random.default_rng(2)
BUDGETS = [10_000 * 2**i for i in range(6)]


def points(slope: float, noise: float = 0.0, sizes: int = 6) -> list[Point]:
    return [Point(f"{b // 1000}K", b * f, str(j), 0.6 + slope * math.log10(b / 1e4)
                  + RNG.normal(0, noise)) for b in BUDGETS[:sizes]
            for j, f in enumerate((0.9, 1.0, 1.1)) for _ in range(2)]  # fmt: skip


def test_loss_falls_with_size_names_its_test() -> None:
    line = say(TrendFact("h1", trend(points(-0.02, 0.001))))
    assert line.startswith("h1: loss falls with size: -0.0")
    assert "per decade of parameters [" in line
    assert "95% t(4) interval of the slope over 6 size means" in line
    assert "widened by the within-size variance; 18 configurations, 36 runs" in line


def test_rises_and_no_detectable_trend() -> None:
    assert say(TrendFact("h5", trend(points(0.02, 0.001)))).startswith(
        "h5: loss rises with size: +0.0"
    )
    flat = say(TrendFact("h1", trend(points(0.0, 0.01))))
    assert flat.startswith("h1: no detectable trend in test BCE with size: ")


def test_too_few_sizes_for_a_trend() -> None:
    assert say(TrendFact("h1", trend(points(-0.02, sizes=2)))) == (
        "h1: too few sizes for a trend (2 sizes, 12 runs; a trend needs 3 sizes or more)"
    )


def test_per_period_verdicts_are_counted_and_the_exponent_said() -> None:
    pts = points(-0.02, 0.001)
    periods = (trend(pts), trend(points(-0.02, 0.001)), trend(points(0.0, 0.02)))
    exponent = fit_exponent(size_means(points(-0.02, sizes=4)))
    line = say(TrendFact("h1", trend(pts), periods, exponent))
    assert "; per test period: falls in 2 of 3, no detectable trend in 1 of 3" in line
    assert line.endswith("exponent not determined (4 sizes: a floor and an exponent need "
                         "5 sizes or more)")  # fmt: skip


def comparison(name: str, shift: float, experiment: str = "20K_h1", oracle: bool = False
               ) -> Comparison:  # fmt: skip
    gap = paired_gap([shift + RNG.normal(0, 0.02, 300)], [np.zeros(0)], 1)
    size = experiment.split("_")[0]
    return Comparison(experiment, name, oracle, 1, size, gap, (gap, gap), 0.61, 0.5)


def test_loses_to_and_beats_name_the_adjusted_test() -> None:
    c = adjust([comparison(LOGISTIC, 0.02), comparison(PERSISTENCE, -0.02)])
    loses, beats = (say(VersusFact(x)) for x in c)
    assert loses.startswith("20K_h1 loses to logistic regression: test BCE gap +0.0")
    level = f"{1 - c[0].pooled.level_alpha:.2%}"  # its Holm step: 97.50% or 95.00%
    assert "paired test over 300 test windows in 2 periods, batch-means variance, " \
        f"Holm-adjusted over 2 comparisons at 5%: interval at {level}" in loses  # fmt: skip
    assert {c[0].pooled.level_alpha, c[1].pooled.level_alpha} == {0.025, 0.05}
    assert "; per period: loses to in 2 of 2" in loses
    assert "ROC-AUC 0.610 vs 0.500 (described, not tested)" in loses
    assert beats.startswith("20K_h1 beats persistence: ")
    assert verdict_text(c[0]).startswith("loses to (gap +0.0")


def test_no_detectable_difference_gives_the_gap_and_interval() -> None:
    c = adjust([comparison(CONSTANT_PRIOR, 0.0)])[0]
    assert c.word == "no detectable difference"
    assert say(VersusFact(c)).startswith(
        "20K_h1: no detectable difference from the constant prior: test BCE gap "
    )
    text = verdict_text(c)
    assert text.startswith("no detectable difference (gap ") and text.count("[") == 1


def test_the_oracle_is_a_reference_never_a_word() -> None:
    c = adjust([comparison(ORACLE, 0.05, oracle=True)])[0]
    line = say(VersusFact(c))
    assert "oracle constant (an oracle: it knows the test label rate" in line
    assert "not tested" in line and "loses" not in line and "beats" not in line
    assert verdict_text(c).startswith("reference (gap ")


def test_the_headline_summary_per_horizon() -> None:
    cs = adjust([comparison(LOGISTIC, 0.03, "10K_h1"), comparison(LOGISTIC, 0.03, "20K_h1"),
                 comparison(CONSTANT_PRIOR, 0.0, "10K_h1"),
                 comparison(CONSTANT_PRIOR, 0.0, "20K_h1")])  # fmt: skip
    (fact,) = summaries(cs)
    assert isinstance(fact, BaselineSummaryFact)
    assert say(fact) == (
        "h1 against the baselines: models lose to logistic regression at 2 of 2 sizes "
        "(10K, 20K); no detectable difference from the constant prior at any of 2 sizes "
        "(paired test of test BCE over test windows, Holm-adjusted over 4 comparisons at 5%)"
    )


def test_trend_difference_sentence() -> None:
    d = trend_difference(points(-0.03, 0.001), points(0.0, 0.001), names=("h5", "h1"))
    line = say(DifferenceFact(d))
    assert line.startswith("h5 vs h1: the trends differ: slope difference -0.03")
    assert "95% t(4) interval, paired by size over 6 shared sizes" in line


def test_label_drift_uses_the_one_convention() -> None:
    # the demo's h1: fitted on 0.249, test 0.119: -52% of the rarer class
    line = say(DriftFact(1, 2, 0.249, 0.119))
    assert line.startswith("h1 period 2: label rate drifts: test 0.119 vs 0.249 in the windows")
    assert "(-52% of the rarer class; the limit is 20%)" in line and "nats" in line
    steady = say(DriftFact(5, 1, 0.50, 0.45))
    assert steady.startswith("h5 period 1: label rate steady:") and "-10%" in steady
