"""Every sentence of the report comes from `engine.report.words.say`: one test each."""

from __future__ import annotations

import math

import numpy as np

from engine.report.baselines import CONSTANT_PRIOR, LOGISTIC, ORACLE, PERSISTENCE, Baseline
from engine.report.compare import compare
from engine.report.powerlaw import fit_power_law
from engine.report.words import (
    DRIFT_NATS,
    DriftFact,
    FitFact,
    LosesToLinearFact,
    VersusFact,
    loses_to_linear,
    say,
)

SIZES = np.repeat([1e4, 2.5e4, 6.25e4, 1.5e5, 4e5], 3)
RNG = np.random.default_rng(2)


def baseline(name: str, bce: float, auc: float, oracle: bool = False) -> Baseline:
    return Baseline(name, "f", "train+val", 100, {"bce": bce, "roc_auc": auc}, oracle)


def versus(name: str, bces: list[float], aucs: list[float], base: Baseline) -> VersusFact:
    return VersusFact(
        compare("20K_h1", bces, base, "bce"), compare("20K_h1", aucs, base, "roc_auc")
    )


def test_loss_falls_with_size() -> None:
    fit = fit_power_law(SIZES, 5 * SIZES**-0.3 + 0.3 + RNG.normal(0, 0.001, 15), n_boot=300)
    line = say(FitFact(1, fit))
    assert line.startswith("h1: loss falls with size: alpha = 0.")
    assert "95% CI [" in line and "over 5 sizes, 5 configurations, 15 runs" in line


def test_no_evidence_of_scaling() -> None:
    fit = fit_power_law(SIZES, 0.6 + RNG.normal(0, 0.01, 15), n_boot=300, seed=3)
    assert fit.verdict == "no evidence of scaling"
    assert say(FitFact(5, fit)).startswith("h5: no evidence of scaling: alpha = ")
    assert "contains 0" in say(FitFact(5, fit))


def test_inverse_scaling() -> None:
    fit = fit_power_law(SIZES, 0.7 - 2 * SIZES**-0.2 + RNG.normal(0, 0.001, 15), n_boot=300)
    assert say(FitFact(1, fit)).startswith("h1: inverse scaling, loss rises with size: alpha = -")


def test_too_few_sizes() -> None:
    fit = fit_power_law(SIZES[:9], 0.6 + RNG.normal(0, 0.01, 9))
    assert say(FitFact(1, fit)) == (
        "h1: too few sizes for a verdict: 3 sizes, 9 runs; a verdict needs 4 sizes or more"
    )


def test_bigger_models_close_the_gap_to_logistic_regression() -> None:
    margin = 2 * SIZES**-0.3 + 0.01 + RNG.normal(0, 0.0005, 15)
    fit = fit_power_law(SIZES, margin, n_boot=300)
    line = say(FitFact(1, fit, "margin over logistic regression"))
    assert line.startswith(
        "h1 (margin over logistic regression): bigger models close the gap to logistic "
        "regression: alpha = "
    )
    assert "margin floor c = +0.0" in line


def test_loses_to_logistic_regression() -> None:
    fact = versus("x", [0.37, 0.38, 0.36], [0.70, 0.72, 0.66], baseline(LOGISTIC, 0.2775, 0.831))
    assert say(fact) == (
        "20K_h1 loses to logistic regression: test BCE 0.3700 ± 0.0100 vs 0.2775 "
        "(0 of 3 runs better); ROC-AUC 0.6933 ± 0.0306 vs 0.8310 (0 of 3 runs better)"
    )


def test_beats_a_baseline() -> None:
    fact = versus("x", [0.30, 0.31], [0.70, 0.72], baseline(CONSTANT_PRIOR, 0.40, 0.5))
    assert say(fact).startswith("20K_h1 beats the constant prior: test BCE 0.3050")


def test_neither_beats_nor_loses_says_how_many_runs_do() -> None:
    fact = versus("x", [0.30, 0.50], [0.70, 0.40], baseline(CONSTANT_PRIOR, 0.40, 0.5))
    line = say(fact)
    assert line.startswith("20K_h1 neither beats nor loses to the constant prior")
    assert "(1 of 2 runs better)" in line


def test_beats_persistence() -> None:
    fact = versus("x", [0.30], [0.7], baseline(PERSISTENCE, 0.40, 0.56))
    assert say(fact).startswith("20K_h1 beats persistence: test BCE 0.3000 vs 0.4000")


def test_the_oracle_is_marked_as_an_oracle() -> None:
    fact = versus("x", [0.30], [0.7], baseline(ORACLE, 0.35, 0.5, oracle=True))
    assert "the oracle constant (an oracle: it knows the test label rate" in say(fact)
    assert "test BCE 0.3000 vs 0.3500 (1 of 1 runs better)" in say(fact)  # one run: no sd


def test_undefined_metrics_are_n_a() -> None:
    fact = versus("x", [0.30], [math.nan], baseline(CONSTANT_PRIOR, 0.35, 0.5))
    assert say(fact).endswith("; ROC-AUC n/a")


def test_models_lose_to_logistic_regression_headline() -> None:
    lose = versus("x", [0.37], [0.7], baseline(LOGISTIC, 0.28, 0.8))
    win = VersusFact(
        compare("50K_h1", [0.2], baseline(LOGISTIC, 0.28, 0.8), "bce"),
        compare("50K_h1", [0.9], baseline(LOGISTIC, 0.28, 0.8), "roc_auc"),
    )
    fact = loses_to_linear([lose, win])
    assert fact == LosesToLinearFact(("20K_h1",), 2)
    assert say(fact).startswith("models lose to logistic regression: in 1 of 2 experiments")
    assert loses_to_linear([win]) is None


def test_label_rate_drifts() -> None:
    line = say(DriftFact(1, 0.231, 0.119))
    assert line.startswith("h1: label rate drifts: train+validation 0.231, test 0.119 (-48%)")
    assert "nats of test BCE to the oracle constant" in line


def test_label_rate_steady() -> None:
    fact = DriftFact(5, 0.50, 0.51)
    assert fact.nats < DRIFT_NATS
    assert say(fact) == "h5: label rate steady: train+validation 0.500, test 0.510 (+2%)"
