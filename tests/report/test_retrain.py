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
    pending,
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
    return collect(synthetic.storage, "synth", top_k=1)[0]


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
    assert {(r.source_trial, r.seed) for r in runs} == {(1, 0), (1, 1)}
    for run, trial in zip(runs, stored, strict=True):
        attrs = trial.user_attrs
        assert trial.value == pytest.approx(run.test_metrics["bce"])
        assert attrs["source_trial"] == 1 and attrs["seed"] == run.seed
        assert attrs["epochs"] == 2 and attrs["train_params"]["patience"] == 2
        data = loader.data
        assert attrs["train_windows"] == len(data.train) + len(data.val)
        assert attrs["test_windows"] == len(data.test) == run.test_metrics["n"]
        # threshold-free scores only: the model trained on validation (module doc)
        assert set(run.test_metrics) >= {"bce", "roc_auc", "pr_auc", "brier"}
        assert "precision" not in run.test_metrics and "threshold" not in attrs

    again = retrain_experiment(synthetic.storage, exp, [0, 1, 2], loader, CPU_FP32)
    assert loader.calls == 3  # only seed 2 was trained
    assert [r.reused for r in again] == [True, True, False]
    assert [r.test_metrics for r in again[:2]] == [r.test_metrics for r in runs]


def test_the_top_configurations_are_each_retrained(synthetic: SyntheticCampaign) -> None:
    """Three trials of two architectures, top_k 2: the best of each architecture."""
    exp = synthetic.experiment("1K", 1)
    other = Architecture(d_model=8, n_layers=2, n_heads=2, d_ff=16)
    synthetic.add_trial(exp, 0.64, 1234, TINY, train_params=PARAMS, best_epoch=1)
    synthetic.add_trial(exp, 0.65, 1234, TINY, train_params=PARAMS, best_epoch=1)
    synthetic.add_trial(exp, 0.66, 2345, other, train_params=PARAMS, best_epoch=1)
    result = collect(synthetic.storage, "synth", top_k=2)[0]
    assert [t.number for t in result.top] == [0, 2]  # distinct architectures first
    assert pending(synthetic.storage, result, [0, 1]) == 4
    runs = retrain_experiment(synthetic.storage, result, [0, 1], Loader(), CPU_FP32)
    assert [(r.source_trial, r.seed) for r in runs] == [(0, 0), (0, 1), (2, 0), (2, 1)]
    assert {r.n_params for r in runs if r.source_trial == 2} != {
        r.n_params for r in runs if r.source_trial == 0
    }
    assert pending(synthetic.storage, result, [0, 1]) == 0
    assert set(stored_runs(synthetic.storage, result)) == {(0, 0), (0, 1), (2, 0), (2, 1)}


def test_a_new_best_trial_is_retrained_anew(synthetic: SyntheticCampaign) -> None:
    exp = campaign_with_best(synthetic)
    loader = Loader()
    retrain_experiment(synthetic.storage, exp, [0], loader, CPU_FP32)
    spec = synthetic.queue.entry("1K_h1").config
    synthetic.add_trial(spec, 0.60, 1234, TINY, train_params=PARAMS, best_epoch=3)
    newer = collect(synthetic.storage, "synth", top_k=1)[0]
    assert newer.best is not None and newer.best.number == 2
    assert stored_runs(synthetic.storage, newer) == {}  # trial 2 is not retrained yet
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
    probs = 1 / (1 + np.exp(-logits))
    brier = float(np.mean((probs - data.test.y.double().numpy()) ** 2))
    assert run.test_metrics["brier"] == pytest.approx(brier, rel=1e-6)
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


def test_top_trials_prefer_distinct_architectures_then_fill() -> None:
    import optuna as _optuna

    from engine.report.collect import top_trials

    def trial(value: float, d_model: int) -> _optuna.trial.FrozenTrial:
        arch = Architecture(d_model=d_model, n_layers=1, n_heads=2, d_ff=16).to_dict()
        return _optuna.trial.create_trial(value=value, user_attrs={"architecture": arch})

    trials = [trial(0.50, 8), trial(0.51, 8), trial(0.52, 16), trial(0.53, 8)]
    assert [t.value for t in top_trials(trials, 2)] == [0.50, 0.52]
    assert [t.value for t in top_trials(trials, 3)] == [0.50, 0.51, 0.52]  # filled, sorted
    assert len(top_trials(trials, 9)) == 4
