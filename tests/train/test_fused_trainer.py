"""A fused group trains each member as its solo trial would: exactly without dropout,
within the seed-to-seed spread with it; members leave (pruned, early-stopped) without
disturbing the others; bf16 with fp32 masters works fused."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterator

import optuna
import pytest
import torch
from market_data import random_ohlcv

from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec
from engine.dataset.windows import PreparedData, prepare_data
from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.train.config import RunOptions, TrainParams
from engine.train.fused_trainer import FusedTrainer, train_group
from engine.train.result import EpochReport, TrainResult, TrialStopped
from engine.train.trainer import train_trial

TINY = Architecture(d_model=16, n_layers=1, n_heads=2, d_ff=32)
BASE = TrainParams(
    learning_rate=3e-3,
    epochs=3,
    batch_size=32,
    weight_decay=0.0,
    warmup_steps=0,
    dropout=0.0,
    head_dropout=0.0,
    grad_clip=0.0,
    patience=10,
    seed=0,
)
FP32 = RunOptions(device="cpu", precision="fp32")
# members differ in every per-trial knob: each must follow its own solo run
MEMBERS = [
    BASE,
    dataclasses.replace(BASE, seed=1, learning_rate=1e-3, weight_decay=1e-2, warmup_steps=5),
    dataclasses.replace(BASE, seed=2, grad_clip=0.3, patience=1),
    dataclasses.replace(BASE, seed=3, learning_rate=2e-2, weight_decay=1e-3, grad_clip=1.0),
]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> PreparedData:
    spec = DataSpec(
        context_len=20,
        patch_len=5,
        stride=5,
        labels=LabelSpec(horizon=1),
        split=SplitSpec(min_val_windows=40),
    )
    return prepare_data(random_ohlcv(520, 0), spec, torch.device("cpu"))


@pytest.fixture(scope="module")
def solo(data: PreparedData) -> list[TrainResult]:
    return [train_trial(TINY, p, data, FP32) for p in MEMBERS]


def results(outcomes: list[TrainResult | BaseException]) -> list[TrainResult]:
    assert all(isinstance(o, TrainResult) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, TrainResult)]


def assert_same_run(fused: TrainResult, solo: TrainResult, tol: float = 1e-4) -> None:
    assert fused.epochs_run == solo.epochs_run
    for f, s in zip(fused.curve, solo.curve, strict=True):
        assert f.train_loss == pytest.approx(s.train_loss, abs=tol)
        assert f.val_loss == pytest.approx(s.val_loss, abs=tol)
        assert f.learning_rate == pytest.approx(s.learning_rate, rel=1e-6)
    assert fused.best_epoch == solo.best_epoch
    assert fused.value == pytest.approx(solo.value, abs=tol)
    assert fused.val_metrics["roc_auc"] == pytest.approx(solo.val_metrics["roc_auc"], abs=1e-3)
    assert fused.stopped_early == solo.stopped_early


def test_each_member_equals_its_solo_run_without_dropout(
    data: PreparedData, solo: list[TrainResult]
) -> None:
    fused = results(train_group(TINY, MEMBERS, data, FP32))
    for f, s in zip(fused, solo, strict=True):
        assert_same_run(f, s)
        assert f.extra["fused_k"] == 4 and f.extra["params"] == s.extra["params"]
    # the members really differ (else equality above would prove little)
    assert len({round(r.value, 6) for r in fused}) == 4
    assert solo[2].stopped_early  # patience 1 left the group early, the others ran on


def test_pruned_member_leaves_and_the_others_still_equal_their_solo_runs(
    data: PreparedData, solo: list[TrainResult]
) -> None:
    seen: dict[int, list[int]] = {}
    done: list[int] = []

    def on_epoch(member: int, report: EpochReport) -> None:
        seen.setdefault(member, []).append(report.epoch)
        if member == 1 and report.epoch == 1:
            raise optuna.TrialPruned("pruned at epoch 1")

    def on_done(member: int, result: TrainResult | None, error: BaseException | None) -> None:
        done.append(member)

    outcomes = train_group(TINY, MEMBERS, data, FP32, on_epoch=on_epoch, on_done=on_done)
    assert isinstance(outcomes[1], optuna.TrialPruned)
    assert seen[1] == [1] and seen[0] == [1, 2, 3]
    for k in (0, 2, 3):
        result = outcomes[k]
        assert isinstance(result, TrainResult)
        assert_same_run(result, solo[k])
    assert done[:2] == [1, 2]  # pruned at epoch 1, early-stopped at epoch 2: told at once
    assert sorted(done) == [0, 1, 2, 3]


def test_with_dropout_fused_and_solo_agree_within_the_seed_spread(data: PreparedData) -> None:
    params = [dataclasses.replace(BASE, seed=s, dropout=0.3, head_dropout=0.2) for s in range(5)]
    solo = [train_trial(TINY, p, data, FP32).value for p in params]
    fused = [r.value for r in results(train_group(TINY, params, data, FP32))]
    spread = max(solo) - min(solo)
    assert spread > 0
    assert abs(statistics.mean(fused) - statistics.mean(solo)) <= spread
    # dropout really acts in the fused model: the same seeds without it train otherwise
    plain = [dataclasses.replace(p, dropout=0.0, head_dropout=0.0) for p in params]
    without = [r.value for r in results(train_group(TINY, plain, data, FP32))]
    assert all(abs(a - b) > 1e-4 for a, b in zip(fused, without, strict=True))


def test_bf16_fused_keeps_fp32_masters_and_tracks_fp32(data: PreparedData) -> None:
    trainer = FusedTrainer(TINY, MEMBERS[:2], data, RunOptions(device="cpu", precision="bf16"))
    assert trainer.model.rows.dtype == torch.bfloat16
    assert trainer.optimizer.master.dtype == torch.float32
    bf16 = results(trainer.run())
    fp32 = results(train_group(TINY, MEMBERS[:2], data, FP32))
    for a, b in zip(bf16, fp32, strict=True):
        assert a.extra["precision"] == "bfloat16"
        assert a.value == pytest.approx(b.value, abs=0.01)


def test_interrupt_stops_every_member(data: PreparedData) -> None:
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    outcomes = train_group(TINY, MEMBERS[:3], data, FP32, should_stop=should_stop)
    assert all(isinstance(o, TrialStopped) for o in outcomes)


def test_members_must_share_epochs_and_batch_size(data: PreparedData) -> None:
    with pytest.raises(UserError, match="share epochs"):
        FusedTrainer(TINY, [BASE, dataclasses.replace(BASE, epochs=4)], data, FP32)
    with pytest.raises(UserError, match="dropout"):
        FusedTrainer(TINY, [BASE, dataclasses.replace(BASE, dropout=1.5)], data, FP32)
