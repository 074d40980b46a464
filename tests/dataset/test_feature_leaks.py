"""No training window's normalized input depends on a validation or test price.

The property, on the embedded S&P 500 data with the reference tier (SMA 200, EMAs, OBV,
weekly RSI): change the prices of every day that validation and test windows touch
(their inputs and their label days), rebuild the processed dataset from those raw
prices as `hpotui data build` does, prepare the windows again, and compare. Every
training window's normalized input and label must be bit for bit the same, in both split
modes and with every normalization; validation windows must not change when only test
prices do; and in each walk-forward period the training and early-stopping windows must
not change when the period's test prices and everything after them do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from engine.dataset.features import compute_features, drop_warmup
from engine.dataset.periods import prepare_period, test_periods
from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec
from engine.dataset.splits import split_days
from engine.dataset.windows import PreparedData, prepare_data

CPU = torch.device("cpu")
HORIZON = 5
CONTEXT = 60


def processed(raw: pd.DataFrame) -> pd.DataFrame:
    return drop_warmup(compute_features(raw, "a25"))


def spec(mode: str, normalization: str = "rolling", periods: int = 1) -> DataSpec:
    return DataSpec(
        context_len=CONTEXT,
        labels=LabelSpec(horizon=HORIZON),
        split=SplitSpec(mode=mode, n_chunks=4, test_periods=periods),  # type: ignore[arg-type]
        normalization=normalization,  # type: ignore[arg-type]
    )


def touched(days: np.ndarray) -> np.ndarray:
    """Frame rows that windows ending on `days` read as input or look at as label."""
    rows = (np.asarray(days)[:, None] + np.arange(-CONTEXT + 1, HORIZON + 1)).ravel()
    return np.unique(rows)


def perturbed(raw: pd.DataFrame, dates: pd.Index, seed: int = 0) -> pd.DataFrame:
    """`raw` with each of `dates`' bars scaled by its own random factor (bars stay
    consistent: high >= open, close >= low)."""
    rng = np.random.default_rng(seed)
    out = raw.copy()
    at = out.index.isin(dates)
    factor = 1 + rng.normal(0, 0.05, int(at.sum()))
    for column in ("Open", "High", "Low", "Close"):
        out.loc[at, column] = out.loc[at, column].to_numpy() * factor
    return out


def rebuilt(raw: pd.DataFrame, frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    changed = processed(perturbed(raw, frame.index[rows]))
    assert changed.index.equals(frame.index)
    return changed


def same(a: PreparedData, b: PreparedData, split: str) -> bool:
    x, y = getattr(a, split), getattr(b, split)
    return bool(torch.equal(x.x, y.x) and torch.equal(x.y, y.y))


@pytest.fixture(scope="module")
def sp500(sp500_raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return sp500_raw, processed(sp500_raw)


@pytest.mark.parametrize("normalization", ["rolling", "zscore", "revin"])
@pytest.mark.parametrize("mode", ["contiguous", "chunks"])
def test_validation_and_test_prices_change_no_training_input(
    sp500: tuple[pd.DataFrame, pd.DataFrame], mode: str, normalization: str
) -> None:
    raw, frame = sp500
    data_spec = spec(mode, normalization)
    days = split_days(len(frame), data_spec)
    before = prepare_data(frame, data_spec, CPU)
    rows = touched(np.concatenate([days["val"], days["test"]]))
    changed = rebuilt(raw, frame, rows)
    after = prepare_data(changed, data_spec, CPU)
    assert same(before, after, "train")
    assert not same(before, after, "test")  # the perturbation is real
    assert not same(before, after, "val")

    only_test = prepare_data(rebuilt(raw, frame, touched(days["test"])), data_spec, CPU)
    assert same(before, only_test, "train") and same(before, only_test, "val")


def test_features_of_the_whole_series_would_leak_in_chunks_mode(
    sp500: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    """The property above can fail: the processed rows that chunks-mode training windows
    read, computed once over the whole series, do change with validation/test prices."""
    raw, frame = sp500
    days = split_days(len(frame), spec("chunks"))
    changed = rebuilt(raw, frame, touched(np.concatenate([days["val"], days["test"]])))
    read = touched(days["train"])
    read = read[read < len(frame)]
    read = read[~np.isin(read, touched(np.concatenate([days["val"], days["test"]])))]
    differs = ~np.isclose(frame.to_numpy()[read], changed.to_numpy()[read], rtol=0, atol=0)
    assert differs.any(axis=1).mean() > 0.3  # most of the rows train windows read


def test_each_walk_forward_period_trains_on_nothing_of_its_test_or_later(
    sp500: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    raw, frame = sp500
    data_spec = spec("contiguous", periods=3)
    periods = test_periods(len(frame), data_spec)
    assert len(periods) == 3
    for period in periods:
        before = prepare_period(frame, data_spec, period, CPU)
        later = np.arange(int(period.test[0]) - CONTEXT + 1, len(frame))
        changed = rebuilt(raw, frame, later)
        after = prepare_period(changed, data_spec, period, CPU)
        assert same(before, after, "train") and same(before, after, "val"), period.name
        assert not same(before, after, "test")


def test_each_segment_starts_after_the_blocks_it_must_not_see() -> None:
    from engine.dataset.segments import segments

    days = {
        "train": np.r_[np.arange(0, 10), np.arange(40, 50), np.arange(80, 90)],
        "val": np.arange(20, 25),
        "test": np.arange(60, 65),
    }
    found = [(s.split, s.first, s.last, s.start) for s in segments(days, horizon=2)]
    assert found == [
        ("train", 0, 9, None),  # nothing before it: the whole past
        ("val", 20, 24, None),  # validation may see training
        ("train", 40, 49, 27),  # after the validation block's last label day (24 + 2)
        ("test", 60, 64, None),  # the test may see everything
        ("train", 80, 89, 67),  # after the test block's labels
    ]
