"""Feature tiers: which columns a processed dataset has and how each is computed.

A tier is data, not code: a list of `IndicatorSpec` rows in `TIERS`. A new tier is new
rows; the computation below handles any spec whose function is a TA-Lib function name
(called as `talib.<FUNCTION>(*inputs, **params)`) or one of the few derived functions in
`_DERIVED`.

Rules every computation keeps (tested in tests/dataset/test_features.py):
- No look-ahead: the value on day t depends only on rows up to and including t.
- Weekly specs (timeframe "weekly") see, on day t, the completed Monday-labelled weeks
  before t's week plus the current week's bar formed from the days up to and including t
  (Open first, High max, Low min, Close last, Volume sum). The reference pipeline mapped
  completed weekly values back onto every day of the week, leaking the week's close into
  its Monday (original-pipeline.md, failure 8).
- Volume: a zero volume is a vendor gap, treated as missing and filled with the previous
  day's volume (forward fill uses only the past). Leading zero-volume rows are dropped
  before anything is computed, so every indicator starts from a clean series.
- Adj Close is never a feature: OHLC are prices as traded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import talib
import talib.abstract

from engine.errors import UserError

BASE_COLUMNS = ["Open", "High", "Low", "Close", "Volume"]
"""Every tier starts with these, as traded (zero volume forward-filled)."""

# Bump when the computation below changes in a way that changes numbers: processed
# datasets record it, so a stale build is never mistaken for a current one.
FEATURES_REVISION = 1

Timeframe = Literal["daily", "weekly"]
Array = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class IndicatorSpec:
    """One feature column: `function(*inputs, **params)`, output `output` (index)."""

    column: str
    function: str
    inputs: tuple[str, ...] = ("close",)
    params: Mapping[str, float | int] = field(default_factory=dict)
    output: int = 0
    timeframe: Timeframe = "daily"

    def describe(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "function": self.function,
            "inputs": list(self.inputs),
            "params": dict(self.params),
            "output": self.output,
            "timeframe": self.timeframe,
        }


def _spec(
    column: str, function: str, *inputs: str, output: int = 0, **params: float
) -> IndicatorSpec:
    return IndicatorSpec(column, function, inputs or ("close",), params, output)


def _weekly(spec: IndicatorSpec) -> IndicatorSpec:
    return IndicatorSpec(
        spec.column, spec.function, spec.inputs, spec.params, spec.output, "weekly"
    )


_STOCHRSI = {"timeperiod": 14, "fastk_period": 5, "fastd_period": 3, "fastd_matype": 0}

# The 20 indicators of the reference pipeline (original-pipeline.md, "Data"), in order.
A25: tuple[IndicatorSpec, ...] = (
    _spec("dema_9", "DEMA", timeperiod=9),
    _spec("dema_10", "DEMA", timeperiod=10),
    _spec("dema_20", "DEMA", timeperiod=20),
    _spec("dema_25", "DEMA", timeperiod=25),
    _spec("dema_90", "DEMA", timeperiod=90),
    _spec("sma_12", "SMA", timeperiod=12),
    _spec("sma_50", "SMA", timeperiod=50),
    _spec("sma_100", "SMA", timeperiod=100),
    _spec("sma_200", "SMA", timeperiod=200),
    _spec("rsi_daily", "RSI", timeperiod=14),
    _spec("stochrsi_daily", "STOCHRSI", output=0, **_STOCHRSI),  # fastK
    _weekly(_spec("rsi_weekly", "RSI", timeperiod=14)),
    _weekly(_spec("stochrsi_weekly", "STOCHRSI", output=0, **_STOCHRSI)),
    _spec("macd_line", "MACD", output=0, fastperiod=12, slowperiod=26, signalperiod=9),
    _spec("obv", "OBV", "close", "volume"),
    _spec("adosc", "ADOSC", "high", "low", "close", "volume", fastperiod=3, slowperiod=10),
    _spec("atr_14", "ATR", "high", "low", "close", timeperiod=14),
    _spec("adx_14", "ADX", "high", "low", "close", timeperiod=14),
    _spec("bb_percent_b", "BB_PERCENT_B", timeperiod=20, nbdevup=2, nbdevdn=2),
    _spec("vwap_20", "VWAP", "close", "volume", timeperiod=20),
)

TIERS: dict[str, tuple[IndicatorSpec, ...]] = {
    "a25": A25,  # the 25 features of the reference pipeline
    "ohlcv": (),  # prices and volume only
}


def _tier(tier: str) -> tuple[IndicatorSpec, ...]:
    try:
        return TIERS[tier]
    except KeyError:
        raise UserError(
            f"unknown feature tier {tier!r}", hint="known tiers: " + ", ".join(TIERS)
        ) from None


def tier_columns(tier: str) -> list[str]:
    """The columns of a processed dataset of `tier`, in order (base columns first)."""
    return BASE_COLUMNS + [spec.column for spec in _tier(tier)]


def tier_fingerprint(tier: str) -> str:
    """sha256 of the tier's spec table and FEATURES_REVISION (recorded per build)."""
    table = {"revision": FEATURES_REVISION, "specs": [s.describe() for s in _tier(tier)]}
    return hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()


# ---- derived functions (not a single TA-Lib call) ---------------------------------------


def _bb_percent_b(close: Array, **params: Any) -> Array:
    """(Close - lower) / (upper - lower) of BBANDS; 0.5 when the bands collapse."""
    upper, _middle, lower = talib.BBANDS(close, **params)
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        pct: Array = np.where(width > 0, (close - lower) / width, 0.5)
    pct[np.isnan(width)] = np.nan
    return pct


def _vwap(close: Array, volume: Array, *, timeperiod: int) -> Array:
    """sum(Close * Volume, n) / sum(Volume, n) over the last n rows."""
    pv = pd.Series(close * volume).rolling(timeperiod).sum()
    vol = pd.Series(volume).rolling(timeperiod).sum()
    result: Array = (pv / vol).to_numpy(dtype=np.float64)
    return result


_DERIVED: dict[str, tuple[Callable[..., Array], str]] = {
    # name -> (function, TA-Lib function whose lookback it shares)
    "BB_PERCENT_B": (_bb_percent_b, "BBANDS"),
    "VWAP": (_vwap, "SMA"),
}


def _call(spec: IndicatorSpec, arrays: list[Array]) -> Array:
    if spec.function in _DERIVED:
        derived: Array = _DERIVED[spec.function][0](*arrays, **spec.params)
        return derived
    result = getattr(talib, spec.function)(*arrays, **spec.params)
    if isinstance(result, tuple):
        result = result[spec.output]
    return np.asarray(result, dtype=np.float64)


def lookback(spec: IndicatorSpec) -> int:
    """Leading rows without a value: TA-Lib's lookback (in weeks for weekly specs)."""
    name = _DERIVED[spec.function][1] if spec.function in _DERIVED else spec.function
    params = {k: v for k, v in spec.params.items() if not k.startswith("nbdev")}
    function: Any = getattr(talib.abstract, "Function")  # noqa: B009 (untyped module)
    return int(function(name, **params).lookback)


def warmup(spec: IndicatorSpec) -> int:
    """Upper bound of leading daily rows without a value (a week has at most 5 days)."""
    n = lookback(spec)
    return 5 * n if spec.timeframe == "weekly" else n


def max_warmup(tier: str) -> int:
    """Upper bound of the warm-up rows a build of `tier` drops (0 for no indicators)."""
    return max((warmup(spec) for spec in _tier(tier)), default=0)


def longest_spec(tier: str) -> str:
    specs = _tier(tier)
    return max(specs, key=warmup).column if specs else ""


# ---- computation ------------------------------------------------------------------------


def prepare_ohlcv(raw: pd.DataFrame) -> pd.DataFrame:
    """Base columns as float64; leading zero-volume rows dropped, later zeros filled."""
    frame = raw[BASE_COLUMNS].astype(np.float64)
    volume = frame["Volume"].where(frame["Volume"] > 0)
    first = volume.first_valid_index()
    if first is None:
        raise UserError("every row has zero volume; volume-based features cannot be computed")
    frame = frame.loc[first:].copy()
    frame["Volume"] = volume.loc[first:].ffill()
    return frame


def week_labels(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The Monday of each date's week."""
    days = index.normalize()
    return days - pd.to_timedelta(days.day_of_week, unit="D")


def _weekly_values(spec: IndicatorSpec, frame: pd.DataFrame) -> Array:
    """Each day's value on weekly bars: completed weeks before it + its week to date."""
    codes, _ = pd.factorize(week_labels(pd.DatetimeIndex(frame.index)))
    groups = frame.groupby(codes, sort=False)
    partial = {
        "open": groups["Open"].transform("first"),
        "high": groups["High"].cummax(),
        "low": groups["Low"].cummin(),
        "close": frame["Close"],
        "volume": groups["Volume"].cumsum(),
    }
    day_bars = [partial[name].to_numpy(dtype=np.float64) for name in spec.inputs]
    # The completed bar of week k is its week-to-date bar on its last day.
    last_day = np.flatnonzero(np.r_[codes[1:] != codes[:-1], True])
    week_bars = [bars[last_day] for bars in day_bars]
    need = lookback(spec)
    out = np.full(len(frame), np.nan)
    buffers = [np.empty(len(last_day) + 1) for _ in spec.inputs]
    filled_to = 0
    for i, week in enumerate(codes):
        if week < need:
            continue  # fewer weekly bars than the lookback: no value yet
        if filled_to != week:
            for buf, bars in zip(buffers, week_bars, strict=True):
                buf[:week] = bars[:week]
            filled_to = week
        for buf, bars in zip(buffers, day_bars, strict=True):
            buf[week] = bars[i]
        out[i] = _call(spec, [buf[: week + 1] for buf in buffers])[-1]
    return out


def compute_features(raw: pd.DataFrame, tier: str) -> pd.DataFrame:
    """All columns of `tier` for every row of `raw` (warm-up rows hold NaN)."""
    specs = _tier(tier)
    frame = prepare_ohlcv(raw)
    arrays = {name.lower(): frame[name].to_numpy(dtype=np.float64) for name in BASE_COLUMNS}
    out = frame.copy()
    for spec in specs:
        if spec.timeframe == "weekly":
            out[spec.column] = _weekly_values(spec, frame)
        else:
            out[spec.column] = _call(spec, [arrays[name] for name in spec.inputs])
    return out[tier_columns(tier)]


def drop_warmup(features: pd.DataFrame) -> pd.DataFrame:
    """Drop leading rows with any missing value; a gap after them is an error."""
    complete = features.notna().all(axis=1).to_numpy()
    if not complete.any():
        raise UserError(
            f"no row has every feature: {len(features)} rows are fewer than the warm-up needs"
        )
    first = int(np.argmax(complete))
    kept = features.iloc[first:]
    if not complete[first:].all():
        bad = kept[~kept.notna().all(axis=1)]
        date = pd.Timestamp(bad.index[0]).date()
        column = bad.columns[bad.iloc[0].isna().to_numpy()][0]
        raise UserError(f"feature {column} is missing on {date} after the warm-up")
    return kept
