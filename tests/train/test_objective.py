"""The selection objective: validation BCE or 1 - validation ROC-AUC picks the best epoch
and is the trial's value; both figures are measured every epoch whichever is chosen."""

from __future__ import annotations

import math

import pytest
import torch
from market_data import random_ohlcv

from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec
from engine.dataset.windows import prepare_data
from engine.model.architecture import Architecture
from engine.train.config import RunOptions, TrainParams
from engine.train.trainer import train_trial

TINY = Architecture(d_model=16, n_layers=1, n_heads=2, d_ff=32)
PARAMS = TrainParams(
    learning_rate=1e-2, epochs=6, batch_size=32, warmup_steps=0, patience=6, dropout=0.0
)


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    spec = DataSpec(
        context_len=20,
        patch_len=5,
        stride=5,
        labels=LabelSpec(horizon=1),
        split=SplitSpec(min_val_windows=40),
    )
    return prepare_data(random_ohlcv(700, 4), spec, torch.device("cpu"))


@pytest.mark.parametrize("objective", ["val_bce", "val_auc"])
def test_objective_picks_the_best_epoch_and_is_the_value(data, objective: str) -> None:  # type: ignore[no-untyped-def]
    options = RunOptions(device="cpu", precision="fp32", threads=1, objective=objective)  # type: ignore[arg-type]
    result = train_trial(TINY, PARAMS, data, options)
    curve = result.curve
    assert len(curve) == 6 and all(0.0 <= e.val_auc <= 1.0 for e in curve)
    if objective == "val_bce":
        assert all(e.objective == e.val_loss for e in curve)
        best = min(curve, key=lambda e: e.val_loss)
    else:
        assert all(math.isclose(e.objective, 1.0 - e.val_auc) for e in curve)
        best = max(curve, key=lambda e: e.val_auc)
    assert result.best_epoch == best.epoch and result.value == best.objective
    # the restored weights are that epoch's: the final metrics repeat its figures
    assert result.val_metrics["bce"] == pytest.approx(best.val_loss, abs=1e-5)
    assert result.val_metrics["roc_auc"] == pytest.approx(best.val_auc, abs=1e-6)
