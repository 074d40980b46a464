"""Metrics from logits: BCE, AUCs, thresholded scores, the near-constant flag."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.train.metrics import (
    base_rate_bce,
    best_f1_threshold,
    classification_metrics,
    sigmoid,
)


def test_bce_matches_torch_with_logits() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 500)
    labels = (rng.random(500) < 0.3).astype(float)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(logits), torch.tensor(labels)
    )
    assert classification_metrics(logits, labels)["bce"] == pytest.approx(float(expected))


def test_hand_computed_scores_at_half_and_best_threshold() -> None:
    probs = np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.1])
    labels = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    m = classification_metrics(np.log(probs / (1 - probs)), labels)
    # at 0.5: predicted positive = {0.9, 0.8}: tp 1, fp 1, fn 2, tn 2
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(0.4) and m["prediction_rate"] == pytest.approx(2 / 6)
    # best F1: threshold 0.3 -> tp 3, fp 1: precision 0.75, recall 1, F1 6/7
    assert m["threshold_best_f1"] == pytest.approx(0.3)
    assert m["f1_at_best"] == pytest.approx(6 / 7)
    assert m["roc_auc"] == pytest.approx(7 / 9)
    assert m["label_rate"] == pytest.approx(0.5)
    assert m["prob_min"] == pytest.approx(0.1) and m["prob_max"] == pytest.approx(0.9)
    assert m["near_constant"] == 0.0


def test_test_split_reuses_the_validation_threshold() -> None:
    probs = np.array([0.9, 0.8, 0.4, 0.3])
    labels = np.array([1.0, 0.0, 1.0, 0.0])
    m = classification_metrics(np.log(probs / (1 - probs)), labels, threshold=0.85)
    assert m["threshold_best_f1"] == 0.85
    assert m["prediction_rate_at_best"] == pytest.approx(0.25)


def test_constant_output_is_flagged() -> None:
    labels = (np.random.default_rng(1).random(300) < 0.2).astype(float)
    m = classification_metrics(np.full(300, -1.386) + 1e-4 * np.arange(300) / 300, labels)
    assert m["near_constant"] == 1.0 and m["prob_std"] < 1e-3


def test_single_class_gives_nan_auc_not_a_crash() -> None:
    m = classification_metrics(np.array([0.1, -0.2, 0.3]), np.zeros(3))
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
    assert best_f1_threshold(sigmoid(np.array([0.1])), np.zeros(1)) == 0.5


def test_base_rate_bce_is_the_entropy_of_the_rate() -> None:
    labels = np.array([1.0, 0.0, 0.0, 0.0])
    assert base_rate_bce(0.25, labels) == pytest.approx(
        -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    )
