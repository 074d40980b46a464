"""Baselines on the test split: constant prior, persistence, logistic regression and
the oracle constant, each on the same test windows as the models."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from engine.dataset.labels import make_labels
from engine.report.baselines import (
    BASELINE_NAMES,
    CONSTANT_PRIOR,
    LOGISTIC,
    ORACLE,
    baselines,
    constant_prior,
    lagged_labels,
    last_day_features,
    persistence,
)
from tests.report.synth import data_spec, ohlcv, prepared


def day_labels(horizon: int = 1, n: int = 700, signal: bool = False) -> np.ndarray:
    return make_labels(ohlcv(n, signal=signal), data_spec(horizon).labels).to_numpy()


def test_constant_prior_is_the_bce_of_the_training_label_rate() -> None:
    train = np.array([1.0] * 30 + [0.0] * 70)  # rate p = 0.3
    test = np.array([1.0] * 10 + [0.0] * 40)  # rate q = 0.2
    metrics, probs = constant_prior(train, test)
    assert probs.shape == (50,) and np.allclose(probs, 0.3)
    p, q = 0.3, 0.2
    assert metrics["bce"] == pytest.approx(-(q * math.log(p) + (1 - q) * math.log(1 - p)))
    assert metrics["prior"] == pytest.approx(p)
    assert metrics["roc_auc"] == pytest.approx(0.5)  # all ties: a chance ranking
    assert metrics["label_rate"] == pytest.approx(q)


def test_constant_prior_on_its_own_labels_is_their_entropy() -> None:
    labels = np.array([1.0, 0.0, 0.0, 0.0])
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert constant_prior(labels, labels)[0]["bce"] == pytest.approx(entropy)


def test_baselines_use_train_plus_val_and_the_test_split() -> None:
    data = prepared()
    found = baselines(data, day_labels())
    assert tuple(b.name for b in found) == BASELINE_NAMES
    prior, _, logistic, oracle = found
    assert prior.name == CONSTANT_PRIOR and logistic.name == LOGISTIC
    assert prior.fitted_windows == len(data.train) + len(data.val)
    labels = np.concatenate([data.train.y.numpy(), data.val.y.numpy()])
    assert prior.test_metrics["prior"] == pytest.approx(float(labels.mean()))
    assert prior.test_metrics["n"] == len(data.test) == logistic.test_metrics["n"]
    assert "last day" in logistic.features and "5 normalized features" in logistic.features
    assert oracle.name == ORACLE and oracle.oracle and not prior.oracle
    assert oracle.test_metrics["prior"] == pytest.approx(float(data.test.y.numpy().mean()))
    # the oracle knows the test rate: no constant does better on test BCE
    assert oracle.test_metrics["bce"] <= prior.test_metrics["bce"]
    for metric in ("bce", "roc_auc", "pr_auc", "brier"):
        assert metric in logistic.test_metrics
    # every test window's probability, label and day, for the paired comparison
    test_y = data.test.y.numpy()
    for b in found:
        assert len(b.test_probs) == len(b.test_labels) == len(b.test_days) == len(data.test)
        assert list(b.test_days) == list(data.test.days) and np.allclose(b.test_labels, test_y)
        probs = np.clip(np.asarray(b.test_probs), 1e-7, 1 - 1e-7)
        bce = -np.mean(test_y * np.log(probs) + (1 - test_y) * np.log(1 - probs))
        assert bce == pytest.approx(b.test_metrics["bce"], rel=1e-5), b.name
        assert "test_probs" not in b.to_dict()


def test_baselines_are_refitted_on_each_test_period() -> None:
    """Period 2 fits on more windows (everything before its test block) and is scored
    on its own test windows."""
    from engine.dataset.periods import prepare_period, test_periods

    frame = ohlcv(900)
    spec = dataclasses.replace(data_spec(1), split=dataclasses.replace(
        data_spec(1).split, test_fraction=0.3, test_periods=2))  # fmt: skip
    periods = test_periods(len(frame), spec)
    first, second = (baselines(prepare_period(frame, spec, p, torch.device("cpu")), None, p.index)
                     for p in periods)  # fmt: skip
    assert first[0].period == 1 and second[0].period == 2
    assert second[0].fitted_windows > first[0].fitted_windows
    assert set(first[0].test_days).isdisjoint(second[0].test_days)
    assert first[0].test_metrics["prior"] != second[0].test_metrics["prior"]


def test_logistic_regression_learns_a_predictive_feature() -> None:
    """A column that holds tomorrow's high return predicts the 1-day label: the
    regression must find it, and beat the prior by far."""
    with_signal = prepared(signal=True)
    prior, logistic, _ = baselines(with_signal, None)  # no day labels: no persistence
    assert logistic.test_metrics["roc_auc"] > 0.9
    assert logistic.test_metrics["bce"] < 0.6 * prior.test_metrics["bce"]
    without = next(b for b in baselines(prepared(), None) if b.name == LOGISTIC)
    assert without.test_metrics["roc_auc"] < 0.75  # random walk: nothing to learn


def test_logistic_precision_recall_come_with_the_predicted_positive_share() -> None:
    metrics = next(b for b in baselines(prepared(signal=True), None) if b.name == LOGISTIC)
    m = metrics.test_metrics  # from a fit on train only, threshold on validation: named so
    assert 0 < m["predicted_positive_share_train_fit"] < 1
    assert 0.5 < m["precision_train_fit"] <= 1 and 0.5 < m["recall_train_fit"] <= 1
    assert 0 < m["threshold_train_fit"] < 1 and "precision" not in m


def test_persistence_uses_the_latest_label_whose_horizon_has_closed() -> None:
    """No look-ahead: the label persistence uses for a window ending on day t is the
    label of day t - h, and computing it from the frame cut after day t gives the same
    value (it reads no row after t). The label of day t - h + 1 would need row t + 1."""
    horizon = 5
    frame = ohlcv()
    spec = data_spec(horizon)
    labels = make_labels(frame, spec.labels).to_numpy()
    data = prepared(horizon)
    lagged = lagged_labels(labels, data.test.days, horizon)
    for t, value in zip(data.test.days[:40], lagged[:40], strict=True):
        cut = make_labels(frame.iloc[: t + 1], spec.labels).to_numpy()
        assert cut[t - horizon] == value  # known at day t
        assert np.isnan(cut[t - horizon + 1])  # one day later is not
    assert np.isnan(lagged_labels(labels, np.array([2]), horizon)[0])  # before the data


def test_persistence_is_a_calibrated_rate_per_lagged_label() -> None:
    data = prepared(5)
    labels = day_labels(5)
    metrics, probs = persistence(labels, data)
    assert set(np.round(probs, 9)) <= {round(metrics["p_up_after_down"], 9),
                                       round(metrics["p_up_after_up"], 9)}  # fmt: skip
    lagged = lagged_labels(labels, data.test.days, 5)
    assert set(np.unique(lagged)) <= {0.0, 1.0}
    # two probabilities, one per lagged label, both strictly inside (0, 1): finite BCE
    assert 0 < metrics["p_up_after_down"] < 1 and 0 < metrics["p_up_after_up"] < 1
    assert math.isfinite(metrics["bce"]) and math.isfinite(metrics["roc_auc"])


def test_persistence_finds_a_persistent_label() -> None:
    """Labels that come in long runs: yesterday's closed label predicts today's."""
    data = prepared(1)
    runs = ((np.arange(len(data.dates)) // 40) % 2).astype(float)  # 40 up, 40 down, ...
    relabelled = dataclasses.replace(
        data,
        **{
            name: dataclasses.replace(w, y=torch.from_numpy(runs[w.days].astype(np.float32)))
            for name, w in (("train", data.train), ("val", data.val), ("test", data.test))
        },
    )
    metrics, _ = persistence(runs, relabelled)
    assert metrics["p_up_after_up"] > 0.9 and metrics["p_up_after_down"] < 0.1
    assert metrics["roc_auc"] > 0.9
    prior, _ = constant_prior(runs[data.train.days], runs[data.test.days])
    assert metrics["bce"] < 0.5 * prior["bce"]


def test_last_day_features_are_the_windows_last_row() -> None:
    data = prepared()
    features = last_day_features(data.test)
    assert features.shape == (len(data.test), data.n_features)
    assert np.allclose(features[3], data.test.x[3, -1].numpy())
