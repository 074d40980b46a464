"""Feature tiers: exact TA-Lib parameters, weekly bars without look-ahead, proven."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import talib

from engine.dataset import features
from engine.dataset.features import compute_features, drop_warmup, max_warmup, tier_columns
from engine.errors import UserError

A25 = [
    "Open", "High", "Low", "Close", "Volume",
    "dema_9", "dema_10", "dema_20", "dema_25", "dema_90",
    "sma_12", "sma_50", "sma_100", "sma_200",
    "rsi_daily", "stochrsi_daily", "rsi_weekly", "stochrsi_weekly",
    "macd_line", "obv", "adosc", "atr_14", "adx_14", "bb_percent_b", "vwap_20",
]  # fmt: skip


def test_a25_has_the_25_reference_columns_in_order() -> None:
    assert tier_columns("a25") == A25
    assert "a25" in features.TIERS
    assert max_warmup("a25") == 199  # SMA 200
    assert tier_columns("ohlcv") == A25[:5]


def test_unknown_tier_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"unknown feature tier 'b7'.*a25"):
        tier_columns("b7")


def _reference(raw: pd.DataFrame) -> dict[str, np.ndarray]:
    """The 18 daily indicators written out with original-pipeline.md's parameters."""
    h, lo, c, v = (raw[n].to_numpy(dtype=float) for n in ("High", "Low", "Close", "Volume"))
    upper, _, lower = talib.BBANDS(c, timeperiod=20, nbdevup=2, nbdevdn=2)
    ref = {f"dema_{p}": talib.DEMA(c, timeperiod=p) for p in (9, 10, 20, 25, 90)}
    ref |= {f"sma_{p}": talib.SMA(c, timeperiod=p) for p in (12, 50, 100, 200)}
    ref["rsi_daily"] = talib.RSI(c, timeperiod=14)
    ref["stochrsi_daily"] = talib.STOCHRSI(c, timeperiod=14, fastk_period=5, fastd_period=3)[0]
    ref["macd_line"] = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)[0]
    ref["obv"] = talib.OBV(c, v)
    ref["adosc"] = talib.ADOSC(h, lo, c, v, fastperiod=3, slowperiod=10)
    ref["atr_14"] = talib.ATR(h, lo, c, timeperiod=14)
    ref["adx_14"] = talib.ADX(h, lo, c, timeperiod=14)
    ref["bb_percent_b"] = (c - lower) / (upper - lower)
    cv = np.convolve(c * v, np.ones(20))[: len(c)]
    vv = np.convolve(v, np.ones(20))[: len(c)]
    ref["vwap_20"] = np.where(np.arange(len(c)) >= 19, cv / vv, np.nan)
    return ref


def test_daily_indicators_are_talib_with_the_reference_parameters(sp500_raw: pd.DataFrame) -> None:
    got = compute_features(sp500_raw, "a25")
    ref = _reference(sp500_raw)
    assert len(ref) == 18
    for column, expected in ref.items():
        np.testing.assert_allclose(got[column].to_numpy(), expected, rtol=1e-9, err_msg=column)


def _standard_weekly_rsi(raw: pd.DataFrame) -> pd.Series:
    """RSI 14 on completed Monday-labelled weekly closes, indexed by each week's last day."""
    labels = features.week_labels(pd.DatetimeIndex(raw.index))
    last_days = raw.index.to_series().groupby(labels).max()
    closes = raw["Close"].groupby(labels).last()
    return pd.Series(talib.RSI(closes.to_numpy(), timeperiod=14), index=last_days.to_numpy())


def test_weekly_value_on_a_weeks_last_day_is_the_completed_week_value(
    sp500_raw: pd.DataFrame,
) -> None:
    got = compute_features(sp500_raw, "a25")["rsi_weekly"]
    standard = _standard_weekly_rsi(sp500_raw).dropna()
    assert len(standard) > 900
    np.testing.assert_allclose(got.loc[standard.index].to_numpy(), standard.to_numpy(), rtol=1e-9)
    # Earlier days of a week use the week so far, so they differ from the week's end value.
    week_end = pd.Series(standard.to_numpy(), index=standard.index).reindex(got.index).bfill()
    mondays = got.index[
        (got.index.day_of_week == 0) & got.notna() & ~got.index.isin(standard.index)
    ]
    assert (got.loc[mondays] != week_end.loc[mondays]).mean() > 0.95


def _violations(
    compute: Callable[[pd.DataFrame], pd.DataFrame], raw: pd.DataFrame, cuts: list[int]
) -> dict[str, list[str]]:
    """Columns whose values up to a cut day change when the rows after it are removed."""
    full = compute(raw)
    found: dict[str, list[str]] = {}
    for cut in cuts:
        part = compute(raw.iloc[: cut + 1])
        expected = full.iloc[: cut + 1]
        for column in full.columns:
            a, b = part[column].to_numpy(), expected[column].to_numpy()
            if not np.array_equal(a, b, equal_nan=True):
                found.setdefault(column, []).append(str(raw.index[cut].date()))
    return found


def _cuts(raw: pd.DataFrame, count: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(np.arange(20, len(raw) - 1), size=count, replace=False).tolist())


def test_no_feature_uses_rows_after_its_day(sp500_raw: pd.DataFrame) -> None:
    """Truncate at many random days (every weekday included): all 25 columns unchanged."""
    raw = sp500_raw.iloc[3000:4100]
    cuts = _cuts(raw, 50, seed=8)
    assert {raw.index[c].weekday() for c in cuts} == {0, 1, 2, 3, 4}
    assert _violations(lambda r: compute_features(r, "a25"), raw, cuts) == {}
    # The warm-up dropped for training is the same leading rows whatever comes later.
    assert (
        drop_warmup(compute_features(raw.iloc[:700], "a25")).index[0]
        == drop_warmup(compute_features(raw, "a25")).index[0]
    )


def test_the_look_ahead_check_catches_the_reference_pipelines_weekly_leak(
    sp500_raw: pd.DataFrame,
) -> None:
    """Weekly RSI computed on completed weeks and mapped back to every day (failure 8)."""

    def leaky(raw: pd.DataFrame) -> pd.DataFrame:
        labels = features.week_labels(pd.DatetimeIndex(raw.index))
        weekly = raw["Close"].groupby(labels).last()
        rsi = pd.Series(talib.RSI(weekly.to_numpy(), timeperiod=14), index=weekly.index)
        return pd.DataFrame({"rsi_weekly": rsi.reindex(labels).to_numpy()}, index=raw.index)

    raw = sp500_raw.iloc[3000:3600]
    found = _violations(leaky, raw, _cuts(raw, 30, seed=3))
    assert set(found) == {"rsi_weekly"}
    assert len(found["rsi_weekly"]) > 15  # every cut before a Friday


def test_zero_volume_is_filled_from_the_previous_day_and_leading_zeros_dropped(
    sp500_raw: pd.DataFrame,
) -> None:
    raw = sp500_raw.iloc[:400].copy()
    volume = raw.columns.get_loc("Volume")
    raw.iloc[:3, volume] = 0.0
    raw.iloc[300, volume] = 0.0
    got = compute_features(raw, "a25")
    assert got.index[0] == raw.index[3]
    assert got["Volume"].iloc[297] == raw["Volume"].iloc[299]
    filled = raw["Volume"].iloc[3:].replace(0.0, np.nan).ffill()
    c = raw["Close"].iloc[3:]
    expected = (c * filled).rolling(20).sum() / filled.rolling(20).sum()
    np.testing.assert_allclose(got["vwap_20"].to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert not drop_warmup(got).isna().any().any()


def test_warmup_drops_only_leading_rows(sp500_raw: pd.DataFrame) -> None:
    got = drop_warmup(compute_features(sp500_raw.iloc[:600], "a25"))
    assert len(got) == 600 - 199
    assert got.index[0] == sp500_raw.index[199]
    assert list(got.columns) == A25


def test_too_short_for_the_warmup_is_a_user_error(sp500_raw: pd.DataFrame) -> None:
    with pytest.raises(UserError, match="fewer than the warm-up"):
        drop_warmup(compute_features(sp500_raw.iloc[:150], "a25"))
