"""Baselines on the test split: the constant prior and a logistic regression."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.report.baselines import (
    CONSTANT_PRIOR,
    LOGISTIC,
    baselines,
    constant_prior,
    last_day_features,
)
from tests.report.synth import prepared


def test_constant_prior_is_the_bce_of_the_training_label_rate() -> None:
    train = np.array([1.0] * 30 + [0.0] * 70)  # rate p = 0.3
    test = np.array([1.0] * 10 + [0.0] * 40)  # rate q = 0.2
    metrics = constant_prior(train, test)
    p, q = 0.3, 0.2
    assert metrics["bce"] == pytest.approx(-(q * math.log(p) + (1 - q) * math.log(1 - p)))
    assert metrics["prior"] == pytest.approx(p)
    assert metrics["roc_auc"] == pytest.approx(0.5)
    assert metrics["label_rate"] == pytest.approx(q)
    assert metrics["near_constant"] == 1.0


def test_constant_prior_on_its_own_labels_is_their_entropy() -> None:
    labels = np.array([1.0, 0.0, 0.0, 0.0])
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert constant_prior(labels, labels)["bce"] == pytest.approx(entropy)


def test_baselines_use_train_plus_val_and_the_test_split() -> None:
    data = prepared()
    prior, logistic = baselines(data)
    assert prior.name == CONSTANT_PRIOR and logistic.name == LOGISTIC
    assert prior.fitted_windows == len(data.train) + len(data.val)
    labels = np.concatenate([data.train.y.numpy(), data.val.y.numpy()])
    assert prior.test_metrics["prior"] == pytest.approx(float(labels.mean()))
    assert prior.test_metrics["n"] == len(data.test) == logistic.test_metrics["n"]
    assert "last day" in logistic.features and "5 normalized features" in logistic.features


def test_logistic_regression_learns_a_predictive_feature() -> None:
    """A column that holds tomorrow's high return predicts the 1-day label: the
    regression must find it, and beat the prior by far."""
    with_signal = prepared(signal=True)
    prior, logistic = baselines(with_signal)
    assert logistic.test_metrics["roc_auc"] > 0.9
    assert logistic.test_metrics["bce"] < 0.6 * prior.test_metrics["bce"]
    _, without = baselines(prepared())
    assert without.test_metrics["roc_auc"] < 0.75  # random walk: nothing to learn


def test_last_day_features_are_the_windows_last_row() -> None:
    data = prepared()
    features = last_day_features(data.test)
    assert features.shape == (len(data.test), data.n_features)
    assert np.allclose(features[3], data.test.x[3, -1].numpy())
