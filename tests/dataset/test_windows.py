"""Windows and splits: labels from the spec's horizon, purges, chunks, minimum validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from market_data import random_ohlcv

from engine.dataset.labels import make_labels
from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec
from engine.dataset.splits import count_blocks, split_positions
from engine.dataset.windows import prepare_data
from engine.errors import UserError

CPU = torch.device("cpu")


def ohlcv(n: int = 900, seed: int = 0) -> pd.DataFrame:
    return random_ohlcv(n, seed, start="2001-01-01", wick=0.005)


def spec(horizon: int = 1, **split: object) -> DataSpec:
    split_spec = SplitSpec(**{"min_val_windows": 50, **split})  # type: ignore[arg-type]
    # tier ohlcv: the random frames hold prices only (no look-back to restart in chunks)
    return DataSpec(
        tier="ohlcv", context_len=20, labels=LabelSpec(horizon=horizon), split=split_spec
    )


@pytest.mark.parametrize("mode", ["contiguous", "chunks"])
def test_window_labels_are_the_specs_horizon_labels(mode: str) -> None:
    frame = ohlcv()
    rates = {}
    for horizon in (1, 5):
        data = prepare_data(frame, spec(horizon, mode=mode), CPU)
        expected = make_labels(frame, LabelSpec(horizon=horizon)).to_numpy()
        for split in (data.train, data.val, data.test):
            np.testing.assert_array_equal(split.y.numpy(), expected[split.days].astype(np.float32))
        assert data.horizon == horizon
        rates[horizon] = [info.label_rate for info in data.report]
    assert rates[1] != rates[5]


def test_windows_hold_the_context_rows_ending_on_their_day() -> None:
    frame = ohlcv()
    data = prepare_data(frame, dataclasses.replace(spec(), normalization="zscore"), CPU)
    mean, std = np.array(data.norm.mean), np.array(data.norm.std)
    for split in (data.train, data.val, data.test):
        assert split.x.shape == (len(split), 20, 5) and split.x.device == CPU
        for i in (0, len(split) - 1):
            day = split.days[i]
            raw = split.x[i].double().numpy() * std + mean
            np.testing.assert_allclose(raw, frame.to_numpy()[day - 19 : day + 1], rtol=1e-5)


def test_report_gives_size_dates_and_label_rate() -> None:
    frame = ohlcv()
    data = prepare_data(frame, spec(), CPU)
    assert [info.name for info in data.report] == ["train", "val", "test"]
    for info, split in zip(data.report, (data.train, data.val, data.test), strict=True):
        assert info.size == len(split)
        assert info.start == frame.index[split.days[0]].date().isoformat()
        assert info.end == frame.index[split.days[-1]].date().isoformat()
        assert info.label_rate == pytest.approx(float(split.y.mean()))
    n_windows = len(frame) - 20 + 1 - 1
    assert data.report[1].size == round(0.15 * n_windows)


@pytest.mark.parametrize("purge", [None, 7])
@pytest.mark.parametrize("horizon", [1, 5])
def test_contiguous_gap_is_purge_plus_context(horizon: int, purge: int | None) -> None:
    data = prepare_data(ohlcv(), spec(horizon, purge=purge), CPU)
    label_gap = horizon if purge is None else purge
    for earlier, later in ((data.train, data.val), (data.val, data.test)):
        last_label_day = earlier.days.max() + horizon  # label of the last window reads up to here
        first_input_day = later.days.min() - 20 + 1  # context_len 20
        assert last_label_day < first_input_day
        assert later.days.min() - earlier.days.max() == label_gap + 20


def test_purge_shorter_than_horizon_is_an_error() -> None:
    with pytest.raises(UserError, match="shorter than the horizon 5") as caught:
        prepare_data(ohlcv(), spec(5, purge=2), CPU)
    assert caught.value.where == "split.purge"


@pytest.mark.parametrize("horizon", [1, 5])
def test_chunks_use_every_window_of_each_block_with_gaps_around(horizon: int) -> None:
    n_windows, context = 2000, 20
    gap = horizon + context - 1
    split = SplitSpec(mode="chunks", n_chunks=4, seed=3)
    positions = split_positions(n_windows, split, horizon, context)
    val, test, train = positions["val"], positions["test"], positions["train"]
    assert count_blocks(val) == 4 and count_blocks(test) == 4
    assert len(val) == round(0.15 * n_windows) and len(test) == round(0.15 * n_windows)
    # every window between a block's first and last is in the block: runs are complete
    for held_out in (val, test):
        runs = np.split(held_out, np.flatnonzero(np.diff(held_out) > 1) + 1)
        for run in runs:
            np.testing.assert_array_equal(run, np.arange(run[0], run[-1] + 1))
            # no training window within the gap of the block on either side
            near = (train >= run[0] - gap) & (train <= run[-1] + gap)
            assert not near.any()
    # what is neither train nor held out is exactly the gaps
    used = np.zeros(n_windows, dtype=bool)
    used[np.concatenate([train, val, test])] = True
    assert (~used).sum() == 8 * 2 * gap
    assert len(np.intersect1d(val, test)) == 0 and len(np.intersect1d(train, val)) == 0


def test_chunks_are_scattered_and_seeded() -> None:
    a = split_positions(2000, SplitSpec(mode="chunks", seed=1), 1, 20)
    b = split_positions(2000, SplitSpec(mode="chunks", seed=1), 1, 20)
    c = split_positions(2000, SplitSpec(mode="chunks", seed=2), 1, 20)
    np.testing.assert_array_equal(a["val"], b["val"])
    assert not np.array_equal(a["val"], c["val"])
    assert a["val"].min() < 1000 < a["val"].max()  # spread over the timeline


def test_too_small_validation_is_an_error_before_training() -> None:
    frame = ohlcv(400)
    with pytest.raises(UserError) as caught:
        prepare_data(frame, spec(5, min_val_windows=200), CPU)
    text = str(caught.value)
    assert "validation split has 56 windows" in text and "200" in text
    assert "horizon 5" in text and "contiguous" in text


def test_default_minimum_is_200_windows() -> None:
    assert SplitSpec().min_val_windows == 200
    frame = ohlcv(900)
    with pytest.raises(UserError, match="below the minimum of 200"):
        prepare_data(frame, DataSpec(context_len=20), CPU)


def test_no_test_split_when_fraction_is_zero() -> None:
    data = prepare_data(ohlcv(), spec(test_fraction=0.0), CPU)
    assert len(data.test) == 0 and data.report[2].size == 0
    assert data.val.days.max() == len(ohlcv()) - 2  # validation runs to the last labelled day


def test_missing_value_names_column_and_date() -> None:
    frame = ohlcv()
    frame.iloc[100, 2] = np.nan
    with pytest.raises(UserError, match=r"'Low'.*2001-05-21"):
        prepare_data(frame, spec(), CPU)


def test_too_few_rows_name_the_longer_of_context_and_horizon() -> None:
    """The key to shorten, with the most that fits: a 20-row context on 20 rows is the
    context's fault, a 30-day horizon on 40 rows the horizon's."""
    with pytest.raises(UserError, match=r"context_len 20 is longer than the data: 20 rows") as e:
        prepare_data(ohlcv(20), spec(), CPU)
    assert e.value.where == "data.context_len" and e.value.hint == "use a context_len of at most 19"
    with pytest.raises(UserError, match=r"horizon 30 is longer than the data: 40 rows") as e:
        prepare_data(ohlcv(40), spec(horizon=30), CPU)
    assert e.value.where == "labels.horizon" and e.value.hint == "use a horizon of at most 20"
