"""Baselines on the test split: did any model learn more than the label rate?

Both are fitted on the same windows the retrained models train on (train + validation)
and evaluated once on the same untouched test split, with the trainer's own metrics
(`engine.train.metrics.classification_metrics`), so the numbers sit side by side:

- constant prior: always predict the train+validation label rate p. Its test BCE is
  -(q log p + (1 - q) log(1 - p)) for a test label rate q, its ROC-AUC 0.5.
- logistic regression on the last day of each window: the F normalized features of the
  window's most recent row (the day the label is predicted from), standardized and L2
  regularized (C = 1). Solver Newton-Cholesky: the indicator columns are nearly collinear
  and L-BFGS needed hundreds of iterations. The F1 threshold is chosen the way the
  models' is: fitted on train, chosen on validation, refitted on train + validation.
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
from engine.train.metrics import best_f1_threshold, classification_metrics, sigmoid

CONSTANT_PRIOR = "constant prior"
LOGISTIC = "logistic regression"
LOGISTIC_FEATURES = "last day of the window ({n} normalized features)"


@dataclass(frozen=True)
class Baseline:
    """One baseline's test metrics and what it was fitted on."""

    name: str
    features: str
    fitted_on: str
    fitted_windows: int
    test_metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _labels(windows: WindowSet) -> NDArray[np.float64]:
    return np.asarray(windows.y.detach().cpu().numpy(), dtype=np.float64)


def last_day_features(windows: WindowSet) -> NDArray[np.float64]:
    """(N, F): each window's most recent row, as the model sees it (normalized)."""
    return np.asarray(windows.x[:, -1, :].detach().cpu().numpy(), dtype=np.float64)


def constant_prior(
    train_labels: NDArray[np.float64], test_labels: NDArray[np.float64]
) -> dict[str, float]:
    """Test metrics of always predicting the training label rate."""
    rate = float(np.mean(train_labels))
    p = min(max(rate, 1e-7), 1 - 1e-7)
    logits = np.full(len(test_labels), math.log(p / (1 - p)))
    metrics = classification_metrics(logits, test_labels, 0.5)
    metrics["prior"] = rate
    return metrics


def _logistic(x: NDArray[np.float64], y: NDArray[np.float64]) -> Any:
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=200)
    )
    model.fit(x, y >= 0.5)
    return model


def logistic_regression(data: PreparedData) -> dict[str, float]:
    """Test metrics of a logistic regression on last-day features (see module doc)."""
    x_train, y_train = last_day_features(data.train), _labels(data.train)
    x_val, y_val = last_day_features(data.val), _labels(data.val)
    if len(np.unique(y_train >= 0.5)) < 2:
        return {"bce": math.nan}
    on_train = _logistic(x_train, y_train)
    threshold = best_f1_threshold(sigmoid(on_train.decision_function(x_val)), y_val)
    x_all, y_all = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
    final = _logistic(x_all, y_all)
    logits = np.asarray(final.decision_function(last_day_features(data.test)), dtype=np.float64)
    return classification_metrics(logits, _labels(data.test), threshold)


def baselines(data: PreparedData) -> list[Baseline]:
    """The constant prior and the logistic regression on `data`'s test split."""
    fitted = len(data.train) + len(data.val)
    train_val = np.concatenate([_labels(data.train), _labels(data.val)])
    return [
        Baseline(
            CONSTANT_PRIOR,
            "none",
            "train+val",
            fitted,
            constant_prior(train_val, _labels(data.test)),
        ),
        Baseline(
            LOGISTIC,
            LOGISTIC_FEATURES.format(n=data.n_features),
            "train+val",
            fitted,
            logistic_regression(data),
        ),
    ]
