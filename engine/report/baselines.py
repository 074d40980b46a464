"""Baselines on each test period: did any model learn more than simple rules do?

Each is refitted per walk-forward test period (engine/dataset/periods.py) on the same
windows the period's retrained models learn from ("train+val" below: the period's
training windows and its early-stopping windows, everything before the test block less
the embargo), and evaluated once on the same test windows, with the same threshold-free
scores (engine/report/scores.py) and every window's predicted probability
(`Baseline.test_probs`, for the paired comparison in engine/report/compare.py):

- constant prior: always predict the train+validation label rate p. Its test BCE is
  -(q log p + (1 - q) log(1 - p)) for a test label rate q, its ROC-AUC 0.5 (one score
  for every window: all ties, a chance ranking).
- persistence: the most recent label whose horizon has closed at prediction time. A
  window predicting from day t (its last input row) may use the label of day t - h at
  the latest: that label reads prices t-h+1 .. t, all known at t; the label of t - h + 1
  would read day t + 1. The lagged label is turned into a probability by the label rate
  of train+validation windows with that lagged label (add-one smoothed), so its BCE is
  finite.
- logistic regression on the last day of each window: the F normalized features of the
  window's most recent row (the day the label is predicted from), standardized and L2
  regularized (C = 1), fitted on train+validation. Solver Newton-Cholesky: the
  indicator columns are nearly collinear and L-BFGS needed hundreds of iterations. Its
  precision and recall (`precision_train_fit`, `recall_train_fit`) come from another
  fit, on the training windows only, at the best-F1 threshold chosen on the
  early-stopping windows (data that fit did not train on), and are named so.
- oracle constant, clearly marked: always predict the test label rate itself. No model
  can know it; it shows how much of the prior's loss is label drift alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from engine.dataset.windows import PreparedData, WindowSet
from engine.report.scores import at_threshold, threshold_free
from engine.train.metrics import best_f1_threshold, sigmoid

CONSTANT_PRIOR = "constant prior"
PERSISTENCE = "persistence"
LOGISTIC = "logistic regression"
ORACLE = "oracle constant"
BASELINE_NAMES = (CONSTANT_PRIOR, PERSISTENCE, LOGISTIC, ORACLE)
LOGISTIC_FEATURES = "last day of the window ({n} normalized features)"


@dataclass(frozen=True)
class Baseline:
    """One baseline's test metrics and what it was fitted on."""

    name: str
    features: str
    fitted_on: str
    fitted_windows: int
    test_metrics: dict[str, float]
    oracle: bool = False  # uses the test labels: a reference, never a competitor
    period: int = 1
    test_probs: tuple[float, ...] = ()  # per test window, in test-window order
    test_labels: tuple[float, ...] = ()
    test_days: tuple[int, ...] = ()  # each test window's last day (frame row)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("test_probs", "test_labels", "test_days"):
            out.pop(key)  # per window: in the comparison, not in report.json
        return out


def _labels(windows: WindowSet) -> NDArray[np.float64]:
    return np.asarray(windows.y.detach().cpu().numpy(), dtype=np.float64)


def _logit(p: NDArray[np.float64] | float) -> NDArray[np.float64]:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


def last_day_features(windows: WindowSet) -> NDArray[np.float64]:
    """(N, F): each window's most recent row, as the model sees it (normalized)."""
    return np.asarray(windows.x[:, -1, :].detach().cpu().numpy(), dtype=np.float64)


Scored = tuple[dict[str, float], NDArray[np.float64]]  # test metrics, per-window probs


def constant_prior(train_labels: NDArray[np.float64], test_labels: NDArray[np.float64]) -> Scored:
    """Test metrics of always predicting the training label rate."""
    rate = float(np.mean(train_labels))
    metrics = threshold_free(np.full(len(test_labels), float(_logit(rate))), test_labels)
    metrics["prior"] = rate
    return metrics, np.full(len(test_labels), rate)


def lagged_labels(
    day_labels: NDArray[np.float64], days: NDArray[np.int64], horizon: int
) -> NDArray[np.float64]:
    """For windows ending on `days`, the label of day t - horizon: the latest one whose
    future has closed by day t (NaN before the data starts or where it has no label)."""
    lagged = np.asarray(days, dtype=np.int64) - horizon
    out = np.full(len(lagged), np.nan)
    ok = lagged >= 0
    out[ok] = day_labels[lagged[ok]]
    return out


def persistence(day_labels: NDArray[np.float64], data: PreparedData) -> Scored:
    """Test metrics of the lagged-label rule (module doc); `day_labels` is the label of
    every row of the frame the windows came from (NaN where the future is missing)."""
    h = data.horizon
    fit_days = np.concatenate([data.train.days, data.val.days])
    fit_y = np.concatenate([_labels(data.train), _labels(data.val)])
    fit_lag = lagged_labels(day_labels, fit_days, h)
    overall = float(fit_y.mean())
    rate = {}
    for value in (0.0, 1.0):
        match = fit_lag == value
        rate[value] = (float(fit_y[match].sum()) + 1) / (float(match.sum()) + 2)
    test_lag = lagged_labels(day_labels, data.test.days, h)
    probs = np.where(test_lag == 1.0, rate[1.0], np.where(test_lag == 0.0, rate[0.0], overall))
    metrics = threshold_free(_logit(probs), _labels(data.test))
    metrics["p_up_after_up"], metrics["p_up_after_down"] = rate[1.0], rate[0.0]
    return metrics, np.asarray(probs, dtype=np.float64)


def _logistic(x: NDArray[np.float64], y: NDArray[np.float64]) -> Any:
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=200)
    )
    model.fit(x, y >= 0.5)
    return model


def logistic_regression(data: PreparedData) -> Scored:
    """Test metrics of a logistic regression on last-day features (see module doc)."""
    x_train, y_train = last_day_features(data.train), _labels(data.train)
    x_val, y_val = last_day_features(data.val), _labels(data.val)
    x_test, y_test = last_day_features(data.test), _labels(data.test)
    if len(np.unique(y_train >= 0.5)) < 2:
        return {"bce": math.nan}, np.full(len(y_test), math.nan)
    on_train = _logistic(x_train, y_train)
    threshold = best_f1_threshold(sigmoid(on_train.decision_function(x_val)), y_val)
    final = _logistic(np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]))
    logits = np.asarray(final.decision_function(x_test), dtype=np.float64)
    metrics = threshold_free(logits, y_test)
    held_out = sigmoid(on_train.decision_function(x_test))
    metrics.update(
        {f"{k}_train_fit": v for k, v in at_threshold(held_out, y_test, threshold).items()}
    )
    return metrics, np.asarray(sigmoid(logits), dtype=np.float64)


def oracle_constant(test_labels: NDArray[np.float64]) -> Scored:
    """Always predicting the test label rate: knows what no model can (module doc)."""
    return constant_prior(test_labels, test_labels)


def baselines(
    data: PreparedData, day_labels: NDArray[np.float64] | None, period: int = 1
) -> list[Baseline]:
    """The four baselines on `data`'s test windows (persistence needs `day_labels`),
    fitted on its train and validation (early-stopping) windows."""
    fitted = len(data.train) + len(data.val)
    train_val = np.concatenate([_labels(data.train), _labels(data.val)])
    test = _labels(data.test)
    labels = tuple(float(v) for v in test)
    days = tuple(int(d) for d in data.test.days)

    def make(name: str, features: str, on: str, n: int, scored: Scored, oracle: bool = False
             ) -> Baseline:  # fmt: skip
        metrics, probs = scored
        return Baseline(name, features, on, n, metrics, oracle, period,
                        tuple(float(p) for p in probs), labels, days)  # fmt: skip

    out = [make(CONSTANT_PRIOR, "none", "train+val", fitted, constant_prior(train_val, test))]
    if day_labels is not None:
        out.append(
            make(PERSISTENCE, f"the label of day t-{data.horizon} (the latest closed at day t)",
                 "train+val", fitted, persistence(day_labels, data))
        )  # fmt: skip
    out.append(
        make(LOGISTIC, LOGISTIC_FEATURES.format(n=data.n_features), "train+val", fitted,
             logistic_regression(data))
    )  # fmt: skip
    out.append(
        make(ORACLE, "none: the test label rate", "test (oracle)", len(test),
             oracle_constant(test), oracle=True)
    )  # fmt: skip
    return out
