"""Test-split scores the report shows: threshold-free first, thresholded only when honest.

- Threshold-free (BCE, ROC-AUC, PR-AUC, Brier) need no decision rule and lead every
  table.
- Precision and recall need a threshold, and a threshold chosen on data the scored model
  trained on flatters it (or, reused from another model, means nothing: the search's
  validation threshold put 0% to 100% of the retrained seeds' test windows above it).
  So they are computed only for a threshold chosen on data the scored model did not train
  on, and always with the predicted-positive share beside them.
- Undefined is NaN (shown "n/a"): ROC/PR-AUC with one class in the labels, precision
  with no predicted positive, recall with no positive label. Never 0, and the report's
  means skip NaN and say how many values they averaged.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import average_precision_score, roc_auc_score

from engine.train.metrics import bce_from_logits, sigmoid

THRESHOLD_FREE = ("bce", "roc_auc", "pr_auc", "brier")
THRESHOLDED = ("precision", "recall", "predicted_positive_share")


def threshold_free(logits: NDArray[np.float64], labels: NDArray[np.float64]) -> dict[str, float]:
    """BCE, ROC-AUC, PR-AUC, Brier and label facts of one split (AUCs NaN on one class)."""
    probs = sigmoid(np.asarray(logits, dtype=np.float64))
    y = np.asarray(labels, dtype=np.float64)
    two_classes = bool(np.any(y >= 0.5) and np.any(y < 0.5))
    return {
        "n": float(len(y)),
        "bce": bce_from_logits(np.asarray(logits, dtype=np.float64), y),
        "roc_auc": float(roc_auc_score(y >= 0.5, probs)) if two_classes else math.nan,
        "pr_auc": float(average_precision_score(y >= 0.5, probs)) if two_classes else math.nan,
        "brier": float(np.mean((probs - y) ** 2)) if len(y) else math.nan,
        "label_rate": float(y.mean()) if len(y) else math.nan,
        "prob_mean": float(probs.mean()) if len(y) else math.nan,
        "prob_std": float(probs.std()) if len(y) else math.nan,
    }


def at_threshold(
    probs: NDArray[np.float64], labels: NDArray[np.float64], threshold: float
) -> dict[str, float]:
    """Precision, recall and predicted-positive share at `threshold`; NaN when undefined."""
    predicted = np.asarray(probs) >= threshold
    actual = np.asarray(labels) >= 0.5
    tp = float(np.sum(predicted & actual))
    n_predicted, n_actual = float(np.sum(predicted)), float(np.sum(actual))
    return {
        "threshold": float(threshold),
        "precision": tp / n_predicted if n_predicted else math.nan,
        "recall": tp / n_actual if n_actual else math.nan,
        "predicted_positive_share": n_predicted / len(predicted) if len(predicted) else math.nan,
    }
