"""Helpers for the data pipeline tests: slices of the embedded S&P 500 sample."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from engine.paths import SOURCE_ROOT

SP500_SAMPLE = SOURCE_ROOT / "data" / "samples" / "sp500.csv.gz"


@pytest.fixture(scope="session")
def sp500_csv_lines() -> list[str]:
    """The sample's CSV lines: header first, then one line per day (M/D/YYYY dates)."""
    with gzip.open(SP500_SAMPLE, "rt") as stream:
        return stream.read().splitlines()


@pytest.fixture(scope="session")
def sp500_raw() -> pd.DataFrame:
    """The sample as a validated raw frame (DatetimeIndex Date, raw columns)."""
    from engine.dataset.ohlcv import read_ohlcv

    return read_ohlcv(SP500_SAMPLE).frame


@pytest.fixture
def csv_file(tmp_path: Path) -> Callable[..., Path]:
    """`csv_file(lines, name="in.csv")` writes the lines to a file outside the workspace."""
    folder = tmp_path / "inputs"
    folder.mkdir()

    def write(lines: list[str], name: str = "in.csv") -> Path:
        path = folder / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write
