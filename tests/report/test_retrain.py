"""Retraining the top configurations per test period and seed, through the real trainer,
stored as trials of `<study>/retrain` so a second report trains nothing."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest
import torch

from engine.dataset.periods import TestPeriod, prepare_period, test_periods
from engine.dataset.windows import PreparedData
from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.report.collect import ExperimentResult, collect
from engine.report.pool import run_all
from engine.report.retrain import (
    SCHEME,
    RetrainTask,
    retrain_params,
    retrain_study_name,
    run_task,
    store_run,
    stored_runs,
    tasks_for,
)
from engine.train.config import RunOptions
from engine.train.metrics import bce_from_logits
from tests.report.synth import SyntheticCampaign, data_spec, ohlcv

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
SPEC = dataclasses.replace(
    data_spec(1), split=dataclasses.replace(data_spec(1).split, test_fraction=0.3, test_periods=2)
)
FRAME = ohlcv(900)
PERIODS: tuple[TestPeriod, ...] = test_periods(len(FRAME), SPEC)


def period_data(index: int) -> PreparedData:
    return prepare_period(FRAME, SPEC, PERIODS[index - 1], torch.device("cpu"))


class Loader:
    """The in-process data loader: counts how often a run needed data."""

    def __init__(self) -> None:
        self.calls = 0
        self.data = {p.index: period_data(p.index) for p in PERIODS}

    def __call__(self, task: RetrainTask) -> PreparedData:
        self.calls += 1
        return self.data[task.period]


def campaign_with_best(synthetic: SyntheticCampaign) -> ExperimentResult:
    exp = synthetic.experiment("1K", 1)
    synthetic.add_trial(exp, 0.70, 1234, TINY, train_params=PARAMS, best_epoch=2)
    synthetic.add_trial(exp, 0.65, 1234, TINY, train_params=PARAMS, best_epoch=2)
    return collect(synthetic.storage, "synth", top_k=1)[0]


def train_and_store(
    synthetic: SyntheticCampaign, exp: ExperimentResult, tasks: list[RetrainTask], loader: Loader
) -> list[str]:
    errors: list[str] = []

    def done(task: RetrainTask, attrs: dict | None, error: str) -> None:  # type: ignore[type-arg]
        if attrs is None:
            errors.append(error)
        else:
            store_run(synthetic.storage, exp, attrs)

    run_all(tasks, 1, loader, done)
    return errors


def test_retrain_params_are_the_searchs_with_the_seed() -> None:
    best = type("B", (), {"train_params": PARAMS, "best_epoch": 2, "number": 1})()
    params = retrain_params(best, seed=7)  # type: ignore[arg-type]
    # the search's epochs and patience: the period's early-stopping windows stop it
    assert (params.seed, params.epochs, params.patience) == (7, 9, 2)
    assert params.learning_rate == PARAMS["learning_rate"]


def test_tasks_cover_periods_configurations_and_seeds(synthetic: SyntheticCampaign) -> None:
    exp = campaign_with_best(synthetic)
    options = dataclasses.replace(CPU_FP32, objective="val_auc")
    tasks = tasks_for(exp, [0, 1], [1, 2], options)
    assert [t.key for t in tasks] == [(1, 0, 1), (1, 1, 1), (1, 0, 2), (1, 1, 2)]
    assert all(t.options["objective"] == "val_auc" for t in tasks)
    assert tasks[1].params["seed"] == 1 and tasks[0].architecture == TINY.to_dict()


def test_runs_train_per_period_stop_early_and_are_stored_once(
    synthetic: SyntheticCampaign,
) -> None:
    exp = campaign_with_best(synthetic)
    loader = Loader()
    tasks = tasks_for(exp, [0, 1], [1, 2], CPU_FP32)
    assert train_and_store(synthetic, exp, tasks, loader) == []
    assert loader.calls == 4
    runs = stored_runs(synthetic.storage, exp)
    assert set(runs) == {(1, 0, 1), (1, 1, 1), (1, 0, 2), (1, 1, 2)}
    study = optuna.load_study(study_name=retrain_study_name(exp.study_name),
                              storage=synthetic.storage)  # fmt: skip
    for trial in study.trials:
        attrs = trial.user_attrs
        period = attrs["period"]
        data = loader.data[period]
        assert attrs["scheme"] == SCHEME and attrs["source_trial"] == 1
        # trained on everything before the period's test block, stopped on its last part
        assert attrs["train_windows"] == len(PERIODS[period - 1].train)
        assert attrs["early_stop_windows"] == len(PERIODS[period - 1].early_stop)
        assert 1 <= attrs["epochs"] <= 9 and attrs["train_params"]["patience"] == 2
        # every test window's probability, for the paired comparison
        assert attrs["test_days"] == [int(d) for d in data.test.days]
        probs = np.clip(np.asarray(attrs["test_probs"]), 1e-7, 1 - 1e-7)
        y = data.test.y.double().numpy()
        bce = -np.mean(y * np.log(probs) + (1 - y) * np.log(1 - probs))
        assert bce == pytest.approx(trial.value, abs=1e-5)
        assert set(attrs["test_metrics"]) >= {"bce", "roc_auc", "pr_auc", "brier"}
        assert "precision" not in attrs["test_metrics"]
    assert runs[(1, 0, 1)].test_metrics != runs[(1, 1, 1)].test_metrics  # the seed matters
    later = runs[(1, 0, 2)]
    assert set(later.test_days).isdisjoint(runs[(1, 0, 1)].test_days)

    again = [t for t in tasks_for(exp, [0, 1, 2], [1, 2], CPU_FP32)
             if t.key not in stored_runs(synthetic.storage, exp)]  # fmt: skip
    assert [t.key for t in again] == [(1, 2, 1), (1, 2, 2)]  # only the new seed


def test_a_stored_run_is_what_the_trainer_gives_again(synthetic: SyntheticCampaign) -> None:
    """The stored test BCE is the BCE of the same configuration and seed trained again on
    the period's windows (early stopping on its last part) and tested once."""
    from engine.train.trainer import Trainer

    exp = campaign_with_best(synthetic)
    task = tasks_for(exp, [4], [2], CPU_FP32)[0]
    data = period_data(2)
    attrs = run_task(task, data)
    assert exp.best is not None
    trainer = Trainer(TINY, retrain_params(exp.best, 4), data, CPU_FP32)
    result = trainer.run()
    logits = trainer.predict(data.test).double().numpy()
    assert bce_from_logits(logits, data.test.y.double().numpy()) == pytest.approx(
        attrs["test_metrics"]["bce"], rel=1e-6
    )
    assert attrs["epochs"] == result.epochs_run and attrs["best_epoch"] == result.best_epoch


def test_runs_of_the_earlier_scheme_are_not_read(synthetic: SyntheticCampaign) -> None:
    exp = campaign_with_best(synthetic)
    synthetic.add_seed(synthetic.queue.entry("1K_h1").config, 1, 0, 0.5, scheme=None)
    assert stored_runs(synthetic.storage, exp) == {}


def test_a_best_trial_without_train_params_is_refused(synthetic: SyntheticCampaign) -> None:
    exp = synthetic.experiment("1K", 1)
    synthetic.add_trial(exp, 0.6, 1234, TINY, train_params={})
    result = collect(synthetic.storage, "synth")[0]
    assert result.best is not None
    with pytest.raises(UserError, match="no stored train_params"):
        tasks_for(result, [0], [1], CPU_FP32)


def test_a_failing_experiment_is_reported_and_its_other_runs_skipped(
    synthetic: SyntheticCampaign,
) -> None:
    exp = campaign_with_best(synthetic)
    calls = []

    def missing(task: RetrainTask) -> PreparedData:
        calls.append(task.key)
        raise UserError("dataset NOPE not found", where="dataset")

    errors: list[str] = []
    run_all(tasks_for(exp, [0, 1], [1], CPU_FP32), 1, missing,
            lambda task, attrs, error: errors.append(error))  # fmt: skip
    assert len(calls) == 1 and len(errors) == 2 and "NOPE" in errors[1]


def test_top_trials_prefer_distinct_architectures_then_fill() -> None:
    from engine.report.collect import top_trials

    def trial(value: float, d_model: int) -> optuna.trial.FrozenTrial:
        arch = Architecture(d_model=d_model, n_layers=1, n_heads=2, d_ff=16).to_dict()
        return optuna.trial.create_trial(value=value, user_attrs={"architecture": arch})

    trials = [trial(0.50, 8), trial(0.51, 8), trial(0.52, 16), trial(0.53, 8)]
    assert [t.value for t in top_trials(trials, 2)] == [0.50, 0.52]
    assert [t.value for t in top_trials(trials, 3)] == [0.50, 0.51, 0.52]  # filled, sorted
    assert len(top_trials(trials, 9)) == 4
