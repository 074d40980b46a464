"""Retraining the best configuration with seeds, through the real trainer, stored as
trials of `<study>/retrain` so a second report trains nothing."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from engine.dataset.windows import PreparedData
from engine.model.architecture import Architecture
from engine.report.collect import ExperimentResult, collect
from engine.report.retrain import (
    retrain_experiment,
    retrain_params,
    retrain_study_name,
    stored_runs,
    train_plus_val,
)
from engine.train.config import RunOptions
from engine.train.metrics import classification_metrics
from tests.report.synth import SyntheticCampaign, prepared

TINY = Architecture(d_model=8, n_layers=1, n_heads=2, d_ff=16)
PARAMS = {
    "learning_rate": 3e-3,
    "epochs": 9,
    "batch_size": 64,
    "warmup_steps": 0,
    "dropout": 0.0,
    "patience": 2,
    "seed": 0,
}
CPU_FP32 = RunOptions(device="cpu", precision="fp32", threads=1)


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.data = prepared()

    def __call__(self) -> PreparedData:
        self.calls += 1
        return self.data


def campaign_with_best(synthetic: SyntheticCampaign, threshold: float = 0.3) -> ExperimentResult:
    exp = synthetic.experiment("1K", 1)
    synthetic.add_trial(exp, 0.70, 1234, TINY, train_params=PARAMS, best_epoch=2)
    synthetic.add_trial(
        exp, 0.65, 1234, TINY, train_params=PARAMS, best_epoch=2, threshold=threshold
    )
    return collect(synthetic.storage, "synth")[0]


def test_retrain_params_take_the_best_epoch_and_never_stop_early() -> None:
    exp_best = type("B", (), {"train_params": PARAMS, "best_epoch": 2})()
    params = retrain_params(exp_best, seed=7)  # type: ignore[arg-type]
    assert (params.seed, params.epochs, params.patience) == (7, 2, 2)
    assert params.learning_rate == PARAMS["learning_rate"]


def test_train_plus_val_appends_validation_and_keeps_test() -> None:
    data = prepared()
    merged = train_plus_val(data)
    assert len(merged.train) == len(data.train) + len(data.val)
    assert merged.test is data.test and merged.val is data.val
    assert set(merged.train.days) & set(data.test.days) == set()


def test_seeds_are_trained_once_stored_and_reused(synthetic: SyntheticCampaign) -> None:
    exp = campaign_with_best(synthetic)
    assert exp.best is not None and exp.best.number == 1
    loader = Loader()
    runs = retrain_experiment(synthetic.storage, exp, [0, 1], loader, CPU_FP32)
    assert loader.calls == 2 and [r.seed for r in runs] == [0, 1]
    assert not any(r.reused for r in runs)
    assert runs[0].test_metrics["bce"] != runs[1].test_metrics["bce"]  # the seed matters

    study = optuna.load_study(
        study_name=retrain_study_name(exp.study_name), storage=synthetic.storage
    )
    stored = study.trials
    assert [t.number for t in stored] == [r.trial_number for r in runs]
    for run, trial in zip(runs, stored, strict=True):
        attrs = trial.user_attrs
        assert trial.value == pytest.approx(run.test_metrics["bce"])
        assert attrs["source_trial"] == 1 and attrs["seed"] == run.seed
        assert attrs["epochs"] == 2 and attrs["train_params"]["patience"] == 2
        data = loader.data
        assert attrs["train_windows"] == len(data.train) + len(data.val)
        assert attrs["test_windows"] == len(data.test) == run.test_metrics["n"]
        # precision/recall at the threshold the search chose on validation
        assert attrs["threshold"] == 0.3 == run.threshold
        assert attrs["threshold_source"] == "search validation"

    again = retrain_experiment(synthetic.storage, exp, [0, 1, 2], loader, CPU_FP32)
    assert loader.calls == 3  # only seed 2 was trained
    assert [r.reused for r in again] == [True, True, False]
    assert [r.test_metrics for r in again[:2]] == [r.test_metrics for r in runs]


def test_test_metrics_use_the_stored_validation_threshold(synthetic: SyntheticCampaign) -> None:
    exp = campaign_with_best(synthetic, threshold=0.05)
    run = retrain_experiment(synthetic.storage, exp, [0], Loader(), CPU_FP32)[0]
    assert run.threshold == 0.05
    assert run.test_metrics["threshold_best_f1"] == 0.05
    # a threshold far below every probability predicts "up" for (nearly) every window
    assert run.test_metrics["prediction_rate_at_best"] > 0.9


def test_a_new_best_trial_is_retrained_anew(synthetic: SyntheticCampaign) -> None:
    exp = campaign_with_best(synthetic)
    loader = Loader()
    retrain_experiment(synthetic.storage, exp, [0], loader, CPU_FP32)
    spec = synthetic.queue.entry("1K_h1").config
    synthetic.add_trial(spec, 0.60, 1234, TINY, train_params=PARAMS, best_epoch=3)
    newer = collect(synthetic.storage, "synth")[0]
    assert newer.best is not None and newer.best.number == 2
    assert stored_runs(synthetic.storage, newer) == {}
    runs = retrain_experiment(synthetic.storage, newer, [0], loader, CPU_FP32)
    assert loader.calls == 2 and runs[0].epochs == 3


def test_stored_metrics_match_a_recomputation(synthetic: SyntheticCampaign) -> None:
    """The stored test BCE is the BCE of the retrained model's test logits."""
    from engine.train.trainer import Trainer

    exp = campaign_with_best(synthetic)
    loader = Loader()
    run = retrain_experiment(synthetic.storage, exp, [4], loader, CPU_FP32)[0]
    assert exp.best is not None
    data = loader.data
    trainer = Trainer(TINY, retrain_params(exp.best, 4), train_plus_val(data), CPU_FP32)
    trainer.run()
    logits = trainer.predict(data.test).double().numpy()
    again = classification_metrics(logits, data.test.y.double().numpy(), 0.3)
    assert again["bce"] == pytest.approx(run.test_metrics["bce"], rel=1e-6)
    assert np.isfinite(run.test_metrics["roc_auc"])


def test_a_best_trial_without_train_params_is_refused(synthetic: SyntheticCampaign) -> None:
    from engine.errors import UserError

    exp = synthetic.experiment("1K", 1)
    synthetic.add_trial(exp, 0.6, 1234, TINY, train_params={})
    result = collect(synthetic.storage, "synth")[0]
    assert result.best is not None
    with pytest.raises(UserError, match="no stored train_params"):
        retrain_params(result.best, 0)


def test_retraining_caps_warmup_at_a_fifth_of_its_steps(synthetic: SyntheticCampaign) -> None:
    exp = synthetic.experiment("1K", 1)
    synthetic.add_trial(
        exp, 0.6, 1234, TINY, train_params={**PARAMS, "warmup_steps": 500}, best_epoch=2
    )
    result = collect(synthetic.storage, "synth")[0]
    loader = Loader()
    retrain_experiment(synthetic.storage, result, [0], loader, CPU_FP32)
    study = optuna.load_study(
        study_name=retrain_study_name(result.study_name), storage=synthetic.storage
    )
    stored = study.trials[0].user_attrs["train_params"]
    steps = 2 * ((len(loader.data.train) + len(loader.data.val)) // 64)
    assert stored["warmup_steps"] == int(0.2 * steps) < 500
