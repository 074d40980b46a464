"""Synthetic daily OHLCV for tests: a seeded random walk with consistent bars
(High >= Open, Close >= Low) on business days."""

from __future__ import annotations

import numpy as np
import pandas as pd


def random_ohlcv(
    n: int, seed: int = 0, *, start: str = "2005-01-03", wick: float = 0.006
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * (1 + rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, wick, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, wick, n)))
    volume = rng.integers(1_000_000, 5_000_000, n).astype(float)
    dates = pd.bdate_range(start, periods=n, name="Date")
    return pd.DataFrame(
        {"Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume}, index=dates
    )
