"""The trainer: every TrainParams field changes training, best epoch restored, callbacks.

Tiny model (d_model 16, one layer) on a few hundred synthetic windows: each run takes a
fraction of a second.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import optuna
import pandas as pd
import pytest
import torch
from market_data import random_ohlcv

from engine.dataset.labels import make_labels
from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec
from engine.dataset.windows import PreparedData, prepare_data
from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.train.config import RunOptions, TrainParams
from engine.train.memory import SAFETY, estimate_peak_bytes
from engine.train.result import EpochReport, TrialDoesNotFit, TrialStopped
from engine.train.trainer import Trainer, train_trial

TINY = Architecture(d_model=16, n_layers=1, n_heads=2, d_ff=32)
BASE = TrainParams(
    learning_rate=3e-3,
    epochs=2,
    batch_size=32,
    weight_decay=0.0,
    warmup_steps=0,
    dropout=0.0,
    head_dropout=0.0,
    grad_clip=0.0,
    patience=10,
    seed=0,
)
CPU = torch.device("cpu")


def ohlcv(n: int = 520, seed: int = 0) -> pd.DataFrame:
    return random_ohlcv(n, seed)


def prepared(horizon: int = 1, n: int = 520, **split: object) -> PreparedData:
    spec = DataSpec(
        context_len=20,
        patch_len=5,
        stride=5,
        labels=LabelSpec(horizon=horizon),
        split=SplitSpec(**{"min_val_windows": 40, **split}),  # type: ignore[arg-type]
    )
    return prepare_data(ohlcv(n), spec, CPU)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from more threads; one keeps the shared cores calm."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> PreparedData:
    return prepared()


FP32 = RunOptions(precision="fp32")


def run(data: PreparedData, **changes: object) -> Trainer:
    # fp32 everywhere: `auto` would be bf16 on CPUs with AMX and the exact comparisons
    # below are fp32's (bf16 training is tested in tests/train/test_step.py)
    params = dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]
    trainer = Trainer(TINY, params, data, FP32)
    trainer.result = trainer.run()  # type: ignore[attr-defined]
    return trainer


def weights(trainer: Trainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])


def losses(trainer: Trainer) -> list[float]:
    return [r.train_loss for r in trainer.result.curve]  # type: ignore[attr-defined]


def test_same_params_same_result_and_data_reusable(data: PreparedData) -> None:
    before = (data.train.x.clone(), data.val.x.clone(), data.train.y.clone())
    a = run(data)
    # one PreparedData serves every trial of an experiment: training must not touch it
    assert torch.equal(before[0], data.train.x) and torch.equal(before[1], data.val.x)
    assert torch.equal(before[2], data.train.y)
    b = run(data)
    assert torch.equal(weights(a), weights(b))
    assert losses(a) == losses(b)


# --- every TrainParams field changes training --------------------------------------------


def test_learning_rate_reaches_the_optimizer(data: PreparedData) -> None:
    slow, fast = run(data, learning_rate=1e-4), run(data, learning_rate=3e-3)
    assert slow.optimizer.param_groups[0]["initial_lr"] == 1e-4
    start = run(data, epochs=1, learning_rate=1e-9)  # barely moves from the seeded init
    moved_slow = (weights(slow) - weights(start)).norm()
    moved_fast = (weights(fast) - weights(start)).norm()
    assert moved_fast > 5 * moved_slow


def test_epochs_bound_the_run(data: PreparedData) -> None:
    one, three = run(data, epochs=1), run(data, epochs=3)
    assert one.result.epochs_run == 1 and three.result.epochs_run == 3  # type: ignore[attr-defined]
    assert three.step.steps == 3 * one.step.steps


def test_batch_size_sets_steps_and_changes_training(data: PreparedData) -> None:
    small, large = run(data, batch_size=16), run(data, batch_size=64)
    n = len(data.train)
    assert small.steps_per_epoch == n // 16 and large.steps_per_epoch == n // 64
    assert small.step.steps == 2 * (n // 16)
    assert losses(small) != losses(large)


def test_weight_decay_reaches_the_optimizer_and_shrinks_weights(data: PreparedData) -> None:
    plain, decayed = run(data, weight_decay=0.0), run(data, weight_decay=2.0)
    decay_group, free_group = decayed.optimizer.param_groups
    assert decay_group["weight_decay"] == 2.0 and free_group["weight_decay"] == 0.0
    names = {id(p): n for n, p in decayed.model.named_parameters()}
    free = {names[id(p)] for p in free_group["params"]}
    assert all(n.endswith("bias") or "norm" in n for n in free)  # biases and LayerNorms
    assert {"layers.0.ff1.weight", "embed.weight"} <= {names[id(p)] for p in decay_group["params"]}
    matrix = "layers.0.ff1.weight"
    norm = {t: dict(t.model.named_parameters())[matrix].norm() for t in (plain, decayed)}
    assert norm[decayed] < 0.97 * norm[plain]


def test_warmup_shapes_the_learning_rate(data: PreparedData) -> None:
    warm = run(data, warmup_steps=1000)
    cold = run(data, warmup_steps=0)
    steps = warm.step.steps
    assert warm.result.curve[0].learning_rate == pytest.approx(  # type: ignore[attr-defined]
        3e-3 * (steps // 2 + 1) / 1000
    )
    assert cold.result.curve[-1].learning_rate < 1e-5  # cosine decayed to ~0  # type: ignore[attr-defined]
    assert losses(warm) != losses(cold)


def test_dropout_is_active_in_training_only(data: PreparedData) -> None:
    trainer = run(data, dropout=0.3)
    assert trainer.model.dropout == 0.3
    x = data.val.x[:64]
    trainer.model.train()
    assert not torch.equal(trainer.model(x), trainer.model(x))
    trainer.model.eval()
    assert torch.equal(trainer.model(x), trainer.model(x))
    assert losses(trainer) != losses(run(data, dropout=0.0))


def test_head_dropout_is_active_in_training_only(data: PreparedData) -> None:
    trainer = run(data, head_dropout=0.5)
    assert trainer.model.head_dropout == 0.5
    x = data.val.x[:64]
    trainer.model.train()
    assert not torch.equal(trainer.model(x), trainer.model(x))
    assert losses(trainer) != losses(run(data, head_dropout=0.0))


def grad_norm_after_one_step(data: PreparedData, grad_clip: float) -> float:
    trainer = Trainer(TINY, dataclasses.replace(BASE, grad_clip=grad_clip), data, FP32)
    trainer.step(data.train.x[:32], data.train.y[:32])
    grads = [p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None]
    return float(torch.cat(grads).norm())


def test_grad_clip_limits_the_gradient_norm(data: PreparedData) -> None:
    assert grad_norm_after_one_step(data, 0.0) > 0.05
    assert grad_norm_after_one_step(data, 0.01) == pytest.approx(0.01, rel=1e-3)
    clipped = run(data, grad_clip=0.01, learning_rate=1e-2)
    free = run(data, grad_clip=0.0, learning_rate=1e-2)
    assert clipped.step.grad_clip == 0.01 and free.step.grad_clip is None
    assert losses(clipped) != losses(free)


def test_patience_stops_and_restores_the_best_epoch() -> None:
    noise = prepared(n=520)
    # labels with no signal: validation loss rises once the model memorises training
    patient = run(noise, epochs=12, patience=12, learning_rate=1e-2)
    impatient = run(noise, epochs=12, patience=1, learning_rate=1e-2)
    r = impatient.result  # type: ignore[attr-defined]
    assert r.stopped_early and r.epochs_run == r.best_epoch + 1 < 12
    assert patient.result.epochs_run == 12 and not patient.result.stopped_early  # type: ignore[attr-defined]
    # the best epoch's weights are the ones evaluated
    best = r.curve[r.best_epoch - 1].val_loss
    assert r.value == best == min(e.val_loss for e in r.curve)
    assert r.val_metrics["bce"] == pytest.approx(best, rel=1e-5)
    assert r.curve[-1].val_loss != pytest.approx(best, rel=1e-5)
    assert impatient.evaluate_loss(noise.val) == pytest.approx(best, rel=1e-5)


def test_seed_changes_initialisation_and_shuffling(data: PreparedData) -> None:
    a, b = run(data, seed=0), run(data, seed=1)
    assert not torch.equal(weights(a), weights(b))
    assert losses(a) != losses(b)


def test_every_field_has_a_test_here() -> None:
    tested = {
        "learning_rate",
        "epochs",
        "batch_size",
        "weight_decay",
        "warmup_steps",
        "dropout",
        "head_dropout",
        "grad_clip",
        "patience",
        "seed",
    }
    assert set(TrainParams.names()) == tested


# --- the experiment's horizon, callbacks, stop, memory, results ---------------------------


def test_bf16_on_cpu_trains_a_bf16_model_with_fp32_masters(data: PreparedData) -> None:
    params = dataclasses.replace(BASE, epochs=3, dropout=0.1)
    trainer = Trainer(TINY, params, data, RunOptions(precision="bf16"))
    result = trainer.run()
    assert {p.dtype for p in trainer.model.parameters()} == {torch.bfloat16}
    assert all(f.dtype == torch.float32 for f in trainer.optimizer.flat_params)  # type: ignore[attr-defined]
    assert result.extra["precision"] == "bfloat16"
    fp32 = run(data, epochs=3, dropout=0.1).result  # type: ignore[attr-defined]
    assert abs(result.value - fp32.value) < 0.02 * fp32.value  # it learns what fp32 learns
    assert result.val_metrics["n"] == fp32.val_metrics["n"]


def test_trainer_uses_the_horizon_of_the_data_it_is_given() -> None:
    frame = ohlcv()
    rates = {}
    for horizon in (1, 5):
        data = prepared(horizon)
        result = train_trial(TINY, dataclasses.replace(BASE, epochs=1), data, FP32)
        expected = make_labels(frame, LabelSpec(horizon=horizon)).to_numpy()[data.val.days]
        assert result.val_metrics["label_rate"] == pytest.approx(expected.mean())
        assert result.extra["data"]["data"]["labels"]["horizon"] == horizon
        rates[horizon] = result.val_metrics["label_rate"]
    assert rates[5] > rates[1] + 0.1


def test_on_epoch_gets_every_epoch_and_may_prune(data: PreparedData) -> None:
    seen: list[EpochReport] = []
    result = train_trial(
        TINY, dataclasses.replace(BASE, epochs=3), data, FP32, on_epoch=seen.append
    )
    assert [r.epoch for r in seen] == [1, 2, 3] and seen == result.curve
    assert all(r.elapsed_s > 0 and math.isfinite(r.val_loss) for r in seen)

    def prune(report: EpochReport) -> None:
        if report.epoch == 2:
            raise optuna.TrialPruned()

    with pytest.raises(optuna.TrialPruned):
        train_trial(TINY, dataclasses.replace(BASE, epochs=5), data, FP32, on_epoch=prune)


def test_should_stop_raises_trial_stopped_between_steps(data: PreparedData) -> None:
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    trainer = Trainer(TINY, BASE, data, FP32)
    with pytest.raises(TrialStopped):
        trainer.run(should_stop=stop_after_three)
    assert trainer.step.steps == 3


def test_metrics_on_validation_and_test_only_when_asked(data: PreparedData) -> None:
    result = train_trial(TINY, BASE, data, FP32)
    assert result.test_metrics is None
    for key in ("bce", "roc_auc", "pr_auc", "accuracy", "f1", "f1_at_best", "near_constant"):
        assert key in result.val_metrics
    assert result.val_metrics["n"] == len(data.val)
    with_test = train_trial(TINY, BASE, data, RunOptions(evaluate_test=True, precision="fp32"))
    assert with_test.test_metrics is not None and with_test.test_metrics["n"] == len(data.test)
    assert with_test.test_metrics["threshold_best_f1"] == with_test.val_metrics["threshold_best_f1"]
    assert with_test.value == result.value  # the test split does not change the search value


def test_memory_guard_splits_the_batch_keeping_the_effective_batch(data: PreparedData) -> None:
    full = run(data)
    assert full.micro_batch == 32
    peak = {
        b: estimate_peak_bytes(TINY, data.n_features, b, context_len=20, patch_len=5, stride=5)
        for b in (8, 9)
    }
    limit = int((peak[8] + peak[9]) / 2 / SAFETY)  # fits 8, not 9
    split = Trainer(TINY, BASE, data, RunOptions(memory_limit_bytes=limit, precision="fp32"))
    split_result = split.run()
    assert split.micro_batch == split_result.micro_batch == 8
    assert split.steps_per_epoch == full.steps_per_epoch  # same effective batch
    assert [r.train_loss for r in split_result.curve] == pytest.approx(losses(full), rel=1e-4)


def test_memory_guard_refuses_what_does_not_fit_at_batch_1(data: PreparedData) -> None:
    big = Architecture(d_model=64, n_layers=2, n_heads=2, d_ff=256)
    with pytest.raises(TrialDoesNotFit, match="micro-batch 1"):
        Trainer(big, BASE, data, RunOptions(memory_limit_bytes=10_000, precision="fp32"))


def test_bad_params_are_user_errors(data: PreparedData) -> None:
    with pytest.raises(UserError) as caught:
        train_trial(TINY, dataclasses.replace(BASE, batch_size=0), data)
    assert caught.value.where == "batch_size"
