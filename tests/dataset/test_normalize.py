"""Normalization is fitted on training rows only; RevIN standardizes each window."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from engine.dataset.spec import DataSpec, SplitSpec
from engine.dataset.windows import prepare_data

CPU = torch.device("cpu")


def ohlcv(n: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.01, n)))
    high = close * (1 + np.abs(rng.normal(0, 0.005, n)))
    volume = rng.integers(1_000_000, 5_000_000, n).astype(float) * 1000
    dates = pd.bdate_range("2001-01-01", periods=n, name="Date")
    return pd.DataFrame({"High": high, "Close": close, "Volume": volume}, index=dates)


def spec(mode: str = "contiguous", normalization: str = "zscore") -> DataSpec:
    return DataSpec(
        tier="ohlcv",  # the random frames hold prices only
        context_len=20,
        split=SplitSpec(mode=mode, min_val_windows=50),  # type: ignore[arg-type]
        normalization=normalization,  # type: ignore[arg-type]
    )


def training_rows(data_days: np.ndarray, context: int, n: int) -> np.ndarray:
    rows = np.zeros(n, dtype=bool)
    for day in data_days:
        rows[day - context + 1 : day + 1] = True
    return rows


@pytest.mark.parametrize("mode", ["contiguous", "chunks"])
def test_stats_are_mean_and_std_of_the_rows_training_windows_read(mode: str) -> None:
    frame = ohlcv()
    data = prepare_data(frame, spec(mode), CPU)
    rows = training_rows(data.train.days, 20, len(frame))
    assert data.norm.fitted_rows == rows.sum() < len(frame)
    np.testing.assert_allclose(data.norm.mean, frame.to_numpy()[rows].mean(axis=0))
    np.testing.assert_allclose(data.norm.std, frame.to_numpy()[rows].std(axis=0))
    train = data.train.x.reshape(-1, 3)
    assert train.mean(dim=0).abs().max() < 0.2 and (train.std(dim=0) - 1).abs().max() < 0.2


@pytest.mark.parametrize("mode", ["contiguous", "chunks"])
def test_validation_and_test_values_do_not_change_the_stats(mode: str) -> None:
    frame = ohlcv()
    data = prepare_data(frame, spec(mode), CPU)
    held_out = ~training_rows(data.train.days, 20, len(frame))
    changed = frame.copy()
    changed.loc[held_out] = changed.loc[held_out] * 6.0  # the price-level drift of item 7
    again = prepare_data(changed, spec(mode), CPU)
    assert again.norm == data.norm
    assert torch.equal(again.train.x, data.train.x)
    assert not torch.equal(again.val.x, data.val.x)  # the change did reach validation
    # and a change in a training row does move them (so this test can fail)
    moved = frame.copy()
    moved.iloc[int(np.flatnonzero(~held_out)[0])] *= 2.0
    assert prepare_data(moved, spec(mode), CPU).norm.mean != data.norm.mean


def test_revin_standardizes_each_window_and_ignores_price_level() -> None:
    frame = ohlcv()
    data = prepare_data(frame, spec(normalization="revin"), CPU)
    for split in (data.train, data.val, data.test):
        x = split.x.double()
        assert x.mean(dim=1).abs().max() < 1e-5
        assert (x.std(dim=1, unbiased=False) - 1).abs().max() < 1e-4
    scaled = prepare_data(frame * 6.0, spec(normalization="revin"), CPU)
    torch.testing.assert_close(scaled.val.x, data.val.x, atol=1e-4, rtol=1e-4)
    assert data.norm.method == "revin" and data.norm.mean == ()
    assert data.summary()["normalization"]["mean"] == {}


def test_constant_feature_is_centred_not_divided_by_zero() -> None:
    frame = ohlcv().assign(Flag=1.0)
    data = prepare_data(frame, spec(), CPU)
    assert torch.isfinite(data.train.x).all()
    assert data.train.x[..., 3].abs().max() == 0


def test_rolling_uses_each_rows_trailing_window_only() -> None:
    frame = ohlcv()
    rolling = dataclasses.replace(spec(normalization="rolling"), rolling_window=30)
    data = prepare_data(frame, rolling, CPU)
    values = frame.to_numpy()
    day = int(data.val.days[5])
    trailing = values[day - 29 : day + 1]
    expected = (values[day] - trailing.mean(axis=0)) / trailing.std(axis=0)
    np.testing.assert_allclose(data.val.x[5, -1].double().numpy(), expected, rtol=1e-4)
    # a change after a row never moves that row's value (statistics from the past only)
    future = frame.copy()
    future.iloc[day + 1 :] *= 3.0
    again = prepare_data(future, data.spec, CPU)
    np.testing.assert_array_equal(again.val.x[5].numpy(), data.val.x[5].numpy())
    assert data.norm.method == "rolling" and data.summary()["normalization"]["window"] == 30


def test_every_normalization_reaches_training_and_changes_it() -> None:
    from engine.model.architecture import Architecture
    from engine.train.config import RunOptions, TrainParams
    from engine.train.trainer import train_trial

    frame = ohlcv()
    arch = Architecture(d_model=8, n_layers=1, n_heads=2, d_ff=16)
    params = TrainParams(epochs=1, batch_size=64, warmup_steps=0, learning_rate=3e-3)
    options = RunOptions(device="cpu", precision="fp32", threads=1)
    losses, inputs = {}, {}
    for method in ("zscore", "revin", "rolling"):
        data = prepare_data(frame, spec(normalization=method), CPU)
        result = train_trial(arch, params, data, options)
        assert result.extra["data"]["normalization"]["method"] == method
        assert result.extra["data"]["data"]["normalization"] == method
        losses[method], inputs[method] = result.value, data.train.x
    assert len(set(losses.values())) == 3
    assert not torch.equal(inputs["zscore"], inputs["rolling"])
