"""yfinance downloads: retried with backoff, validated, stored; without the extra, one line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from engine.dataset import fetch, manifest
from engine.dataset.manifest import load_processed
from engine.errors import UserError, UserErrors


def yahoo_shaped(raw: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """What yfinance.download returns: (Price, Ticker) column levels, Date index."""
    table = raw[["Adj Close", "Close", "High", "Low", "Open", "Volume"]]
    table.columns = pd.MultiIndex.from_product([table.columns, [symbol]], names=["Price", "Ticker"])
    return table


class FakeYahoo:
    """Stands in for `_yf_download`: fails `failures` times, then serves the fixture."""

    def __init__(self, table: pd.DataFrame, failures: int = 0, empty: bool = False) -> None:
        self.table, self.failures, self.empty = table, failures, empty
        self.calls: list[tuple[str, str | None, str | None]] = []

    def __call__(self, symbol: str, start: str | None, end: str | None) -> pd.DataFrame:
        self.calls.append((symbol, start, end))
        if len(self.calls) <= self.failures:
            raise ConnectionError("Failed to resolve 'query2.finance.yahoo.com'")
        if self.empty:
            return self.table.iloc[:0]
        return self.table


@pytest.fixture
def sleeps() -> list[float]:
    return []


def test_a_download_is_validated_and_stored_as_raw(
    workspace: Path, sp500_raw: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    fake = FakeYahoo(yahoo_shaped(sp500_raw.iloc[:500], "^GSPC"))
    monkeypatch.setattr(fetch, "_yf_download", fake)
    imported = fetch.fetch("^gspc", "1999-01-01", "2001-01-01", sleep=sleeps.append)
    assert fake.calls == [("^GSPC", "1999-01-01", "2001-01-01")]
    assert sleeps == []
    assert imported.entry.name == "GSPC" and imported.entry.source == "yfinance:^GSPC"
    stored = pd.read_parquet(workspace / "data/raw/GSPC.parquet")
    pd.testing.assert_frame_equal(stored, sp500_raw.iloc[:500], check_freq=False)
    from engine.dataset.build import build_dataset

    build_dataset("GSPC")
    frame, _ = load_processed("GSPC", "a25", 1)
    assert len(frame) == 500 - 199


def test_failures_are_retried_with_exponential_backoff(
    workspace: Path, sp500_raw: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    fake = FakeYahoo(yahoo_shaped(sp500_raw.iloc[:300], "SPY"), failures=2)
    monkeypatch.setattr(fetch, "_yf_download", fake)
    fetch.fetch("SPY", retries=3, backoff=0.5, sleep=sleeps.append)
    assert len(fake.calls) == 3
    assert sleeps == [0.5, 1.0]
    assert manifest.find_raw("SPY") is not None


def test_offline_gives_up_in_one_line_with_exit_1(
    workspace: Path, sp500_raw: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    monkeypatch.setattr(fetch, "_yf_download", FakeYahoo(sp500_raw, failures=99))
    with pytest.raises(UserError) as caught:
        fetch.fetch("SPY", retries=3, backoff=1.0, sleep=sleeps.append)
    text = str(caught.value)
    assert "\n" not in text
    assert "could not download SPY after 4 tries (ConnectionError: Failed to resolve" in text
    assert caught.value.exit_code == 1
    assert sleeps == [1.0, 2.0, 4.0]
    assert not (workspace / "data").exists()


def test_empty_downloads_count_as_failures(
    workspace: Path, sp500_raw: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    monkeypatch.setattr(fetch, "_yf_download", FakeYahoo(yahoo_shaped(sp500_raw, "X"), empty=True))
    with pytest.raises(UserError, match=r"after 2 tries \(no rows returned\)"):
        fetch.fetch("XYZQ", retries=1, sleep=sleeps.append)


def test_a_bad_download_is_rejected_like_a_bad_file(
    workspace: Path, sp500_raw: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = yahoo_shaped(sp500_raw.iloc[:300], "SPY")
    table.iloc[5, list(table.columns.get_level_values(0)).index("Low")] = -1.0
    monkeypatch.setattr(fetch, "_yf_download", FakeYahoo(table))
    with pytest.raises(UserErrors) as caught:
        fetch.fetch("SPY", sleep=lambda s: None)
    assert caught.value.lines() == [
        "yfinance SPY: row 6 (1999-01-11): non-positive price (Open, High, Low and Close must be > 0)"
    ]
    assert not (workspace / "data").exists()


def test_bad_dates_are_refused_before_any_download(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeYahoo(pd.DataFrame())
    monkeypatch.setattr(fetch, "_yf_download", fake)
    with pytest.raises(UserError, match=r"--start: not a date: '2020-13-01' \(use YYYY-MM-DD\)"):
        fetch.fetch("SPY", start="2020-13-01")
    assert fake.calls == []


@pytest.mark.skipif(importlib.util.find_spec("yfinance") is not None, reason="yfinance installed")
def test_without_the_extra_it_says_so_in_one_line(workspace: Path) -> None:
    with pytest.raises(UserError) as caught:
        fetch.fetch("SPY", sleep=lambda s: pytest.fail("no retry without the extra"))
    assert str(caught.value) == (
        "the fetch extra is not installed (yfinance is missing) (run pip install 'hpotui[fetch]')"
    )
    assert caught.value.exit_code == 2
    assert not (workspace / "data").exists()


def test_a_missing_yfinance_is_detected_even_where_it_is_installed(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yfinance", None)  # import yfinance -> ImportError
    with pytest.raises(UserError, match=r"fetch extra is not installed"):
        fetch.download("SPY")
