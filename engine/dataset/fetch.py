"""Download daily OHLCV from Yahoo Finance through yfinance (the optional `fetch` extra).

yfinance is imported only inside `_yf_download`, the one function that touches the
network; tests replace it with a local fixture. Failed or empty downloads are retried
with exponential backoff. Without the extra, or when every try fails (offline, unknown
ticker), a one-line UserError says so: exit 2 for the missing extra (install it), exit 1
for a failed download. Prices are requested unadjusted (`auto_adjust=False`), so OHLC
are as traded and Adj Close is kept as its own column, like an imported file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date

import pandas as pd

from engine.dataset import build
from engine.dataset.ohlcv import validate_frame
from engine.errors import UserError

INSTALL_HINT = "pip install 'hpotui[fetch]'"


class ExtraMissing(Exception):
    """yfinance is not installed."""


def _yf_download(symbol: str, start: str | None, end: str | None) -> pd.DataFrame:
    """One download attempt (module level so tests can replace it)."""
    try:
        import yfinance
    except ImportError as error:
        raise ExtraMissing(str(error)) from None
    table: pd.DataFrame = yfinance.download(
        symbol,
        start=start,
        end=end,
        interval="1d",
        auto_adjust=False,
        actions=False,
        progress=False,
        threads=False,
    )
    return table


def _day(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise UserError(f"not a date: {value!r}", where=option, hint="use YYYY-MM-DD") from None


def download(
    ticker: str,
    start: str | None = None,
    end: str | None = None,
    *,
    retries: int = 3,
    backoff: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """The downloaded table; waits backoff, 2*backoff, 4*backoff... between tries."""
    symbol = ticker.strip().upper()
    start, end = _day(start, "--start"), _day(end, "--end")
    problem = "no rows returned"
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            table = _yf_download(symbol, start, end)
        except ExtraMissing:
            raise UserError(
                "the fetch extra is not installed (yfinance is missing)", hint=f"run {INSTALL_HINT}"
            ) from None
        except Exception as error:  # network and vendor errors come in many types
            problem = f"{type(error).__name__}: {error}".splitlines()[0]
            continue
        if table is not None and len(table):
            return table
        problem = "no rows returned"
    raise UserError(
        f"could not download {symbol} after {retries + 1} tries ({problem})",
        hint="offline, or an unknown ticker; `hpotui data import FILE --ticker T` works offline",
        exit_code=1,
    )


def fetch(
    ticker: str,
    start: str | None = None,
    end: str | None = None,
    *,
    force: bool = False,
    retries: int = 3,
    backoff: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> build.Imported:
    """Download `ticker`, validate it like an imported file, store it as raw data."""
    name = build.ticker_name(ticker)
    table = download(ticker, start, end, retries=retries, backoff=backoff, sleep=sleep)
    needed, longest = build.min_raw_rows()
    symbol = ticker.strip().upper()
    data = validate_frame(table, f"yfinance {symbol}", min_rows=needed, needed_by=longest)
    return build.store_raw(data, name, f"yfinance:{symbol}", force=force)
