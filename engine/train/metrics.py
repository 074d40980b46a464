"""Classification metrics of a trial, from logits (probabilities only here, at evaluation).

The model outputs logits and is trained with BCE-with-logits; the sigmoid is applied once,
here (the reference applied it twice and squeezed its predictions, item 9). Thresholded
metrics come at 0.5 and at the threshold that maximises F1 on validation; the test split
reuses the validation threshold (choosing it on test would flatter the test figures).

`near_constant` (1.0/0.0) flags outputs whose standard deviation is below
NEAR_CONSTANT_STD: a model that predicts the base rate for everything, as the reference
did on new data (item 7), is flagged instead of reported as a plausible loss.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

NEAR_CONSTANT_STD = 0.005


def bce_from_logits(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy, computed stably from logits."""
    z = logits.astype(np.float64)
    y = labels.astype(np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def _at_threshold(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = probs >= threshold
    actual = labels >= 0.5
    tp = float(np.sum(predicted & actual))
    fp = float(np.sum(predicted & ~actual))
    fn = float(np.sum(~predicted & actual))
    tn = float(np.sum(~predicted & ~actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / max(1.0, tp + fp + fn + tn),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "prediction_rate": (tp + fp) / max(1.0, tp + fp + fn + tn),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def best_f1_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The probability threshold with the highest F1 (0.5 when there are no positives)."""
    if not np.any(labels >= 0.5) or len(probs) == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(labels >= 0.5, probs)
    denominator = precision[:-1] + recall[:-1]
    f1 = np.divide(
        2 * precision[:-1] * recall[:-1],
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    return float(thresholds[int(np.argmax(f1))])


def classification_metrics(
    logits: np.ndarray, labels: np.ndarray, threshold: float | None = None
) -> dict[str, float]:
    """All metrics of one split. `threshold`: the best-F1 threshold chosen on validation;
    None chooses it on these data (do that for validation only)."""
    probs = sigmoid(logits)
    y = labels.astype(np.float64)
    two_classes = bool(np.any(y >= 0.5) and np.any(y < 0.5))
    chosen = best_f1_threshold(probs, y) if threshold is None else threshold
    metrics: dict[str, float] = {
        "n": float(len(y)),
        "bce": bce_from_logits(logits, y),
        "roc_auc": float(roc_auc_score(y, probs)) if two_classes else math.nan,
        "pr_auc": float(average_precision_score(y, probs)) if two_classes else math.nan,
        "label_rate": float(y.mean()) if len(y) else math.nan,
    }
    metrics.update(_at_threshold(probs, y, 0.5))
    best = _at_threshold(probs, y, chosen)
    metrics["threshold_best_f1"] = chosen
    for key in ("accuracy", "precision", "recall", "f1", "prediction_rate"):
        metrics[f"{key}_at_best"] = best[key]
    std = float(probs.std()) if len(probs) else 0.0
    metrics.update(
        {
            "prob_min": float(probs.min()) if len(probs) else math.nan,
            "prob_max": float(probs.max()) if len(probs) else math.nan,
            "prob_mean": float(probs.mean()) if len(probs) else math.nan,
            "prob_std": std,
            "near_constant": 1.0 if std < NEAR_CONSTANT_STD else 0.0,
        }
    )
    return metrics


def base_rate_bce(train_rate: float, labels: np.ndarray) -> float:
    """BCE of always predicting the training label rate: the loss to beat."""
    p = min(max(train_rate, 1e-7), 1 - 1e-7)
    y = labels.astype(np.float64)
    return float(-np.mean(y * math.log(p) + (1 - y) * math.log(1 - p)))
