"""Runs against a baseline: beats only when every run does, loses when none does."""

from __future__ import annotations

import math

from engine.report.baselines import Baseline
from engine.report.compare import compare, compare_all


def base(bce: float = 0.4, auc: float = 0.6) -> Baseline:
    return Baseline("b", "f", "train+val", 10, {"bce": bce, "roc_auc": auc})


def test_outcomes_need_every_run() -> None:
    assert compare("e", [0.3, 0.35], base(), "bce").outcome == "beats"
    assert compare("e", [0.3, 0.45], base(), "bce").outcome == "mixed"
    assert compare("e", [0.4, 0.45], base(), "bce").outcome == "loses to"  # equal is not better
    assert compare("e", [0.7, 0.65], base(), "roc_auc").outcome == "beats"  # higher is better
    assert compare("e", [0.5, 0.55], base(), "roc_auc").outcome == "loses to"


def test_undefined_runs_are_left_out_not_counted_as_losses() -> None:
    c = compare("e", [0.3, math.nan], base(), "bce")
    assert (c.n_runs, c.n_better, c.outcome, c.model_mean) == (1, 1, "beats", 0.3)
    assert compare("e", [math.nan], base(), "bce").outcome == "n/a"
    assert compare("e", [0.3], base(auc=math.nan), "roc_auc").outcome == "n/a"


def test_spread_is_over_runs() -> None:
    c = compare("e", [0.3, 0.32, 0.34], base(), "bce")
    assert math.isclose(c.model_mean, 0.32) and math.isclose(c.model_sd, 0.02)
    assert len(compare_all("e", [{"bce": 0.3, "roc_auc": 0.7}], [base(), base()])) == 4
