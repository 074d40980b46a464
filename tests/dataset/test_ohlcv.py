"""Raw-data validation: each rule rejects a small bad file, naming file, row and rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.dataset.build import import_raw
from engine.dataset.ohlcv import RAW_COLUMNS, read_ohlcv
from engine.errors import UserError, UserErrors

ROWS = 250  # enough for the a25 warm-up (200), so only the broken rule fires


def _edit(lines: list[str], row: int, column: int, value: str) -> list[str]:
    """Set one cell; `row` counts data rows from 0 (CSV line row + 2)."""
    out = list(lines)
    cells = out[row + 1].split(",")
    cells[column] = value
    out[row + 1] = ",".join(cells)
    return out


# (rule id, edit of the first ROWS lines, CSV line(s) and dates to name, rule text)
# Columns: 0 Date, 1 Open, 2 High, 3 Low, 4 Close, 5 Adj Close, 6 Volume.
CASES: list[tuple[str, Callable[[list[str]], list[str]], list[str], str]] = [
    (
        "unparseable date",
        lambda ls: _edit(ls, 9, 0, "1999-13-45"),
        ["line 11 (1999-13-45)"],
        "unparseable date '1999-13-45'",
    ),
    (
        "duplicate date",
        lambda ls: _edit(ls, 10, 0, ls[10].split(",")[0]),
        ["line 11 (1999-01-15)", "line 12 (1999-01-15)"],
        "duplicate date",
    ),
    (
        "non-positive price",
        lambda ls: _edit(ls, 4, 3, "0"),
        ["line 6 (1999-01-08)"],
        "non-positive price",
    ),
    (
        "High below",
        lambda ls: _edit(ls, 4, 2, "1.5"),
        ["line 6 (1999-01-08)"],
        "High below Open or Close",
    ),
    (
        "Low above",
        lambda ls: _edit(ls, 4, 3, "99999"),
        ["line 6 (1999-01-08)"],
        "Low above Open or Close",
    ),
    (
        "negative volume",
        lambda ls: _edit(ls, 7, 6, "-100"),
        ["line 9 (1999-01-13)"],
        "negative volume",
    ),
    (
        "missing Close",
        lambda ls: _edit(ls, 7, 4, ""),
        ["line 9 (1999-01-13)"],
        "missing value in Close",
    ),
    (
        "missing Open",
        lambda ls: _edit(ls, 8, 1, " "),
        ["line 10 (1999-01-14)"],
        "missing value in Open",
    ),
    (
        "text",
        lambda ls: _edit(ls, 8, 2, "abc"),
        ["line 10 (1999-01-14)"],
        "text 'abc' in numeric column High",
    ),
]


@pytest.mark.parametrize(("rule", "edit", "places", "text"), CASES, ids=[c[0] for c in CASES])
def test_each_row_rule_names_file_row_and_rule_and_writes_nothing(
    workspace: Path,
    sp500_csv_lines: list[str],
    csv_file: Callable[..., Path],
    rule: str,
    edit: Callable[[list[str]], list[str]],
    places: list[str],
    text: str,
) -> None:
    path = csv_file(edit(sp500_csv_lines[: ROWS + 1]))
    with pytest.raises(UserErrors) as caught:
        import_raw(path, "BAD")
    lines = caught.value.lines()
    assert len(lines) == len(places), lines
    for line, place in zip(lines, places, strict=True):
        assert line.startswith(f"{path}: {place}: "), line
        assert text in line, line
    assert caught.value.exit_code == 2
    assert not (workspace / "data").exists()


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (b"", "empty file"),
        (b"Date,Open,High,Low,Close,Adj Close,Volume\n", "empty file: a header but no rows"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00binary\x00\x00stuff", "binary file"),
        (bytes(range(256)) * 4, "binary file"),
        (b"Date,Open,High,Low,Close\n1/4/1999,1,2,0.5,1.5\n", "missing column(s) Volume"),
        (b"when,price\n1/4/1999,1\n", "missing column(s) Date, Open, High, Low, Close, Volume"),
    ],
    ids=["empty", "header only", "zip", "bytes", "no Volume", "no OHLCV"],
)
def test_file_level_rules(workspace: Path, tmp_path: Path, content: bytes, text: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        import_raw(path, "BAD")
    assert str(caught.value).startswith(f"{path}: {text}")
    assert "\n" not in str(caught.value)
    assert not (workspace / "data").exists()


def test_too_few_rows_names_the_longest_window(
    workspace: Path, sp500_csv_lines: list[str], csv_file: Callable[..., Path]
) -> None:
    path = csv_file(sp500_csv_lines[:51])
    with pytest.raises(
        UserError, match=r"too few rows: 50, at least 200 needed for the warm-up of sma_200"
    ):
        import_raw(path, "SHORT")
    assert not (workspace / "data").exists()


def test_all_row_problems_are_reported_together(
    sp500_csv_lines: list[str], csv_file: Callable[..., Path]
) -> None:
    lines = _edit(_edit(sp500_csv_lines[:30], 2, 6, "-1"), 20, 4, "x")
    with pytest.raises(UserErrors) as caught:
        read_ohlcv(csv_file(lines))
    assert [line.split(": ")[1] for line in caught.value.lines()] == [
        "line 4 (1999-01-06)",
        "line 22 (1999-02-02)",
    ]


def test_unsorted_dates_are_sorted_with_a_warning(
    sp500_csv_lines: list[str], csv_file: Callable[..., Path]
) -> None:
    lines = sp500_csv_lines[:20]
    lines[5], lines[6] = lines[6], lines[5]
    data = read_ohlcv(csv_file(lines))
    assert data.frame.index.is_monotonic_increasing
    assert len(data.frame) == 19
    assert len(data.warnings) == 1
    assert "line 7 (1999-01-08)" in data.warnings[0] and "sorted" in data.warnings[0]


def test_reads_the_sample_with_adj_close_kept_apart(sp500_raw: pd.DataFrame) -> None:
    assert list(sp500_raw.columns) == RAW_COLUMNS
    assert sp500_raw.index.name == "Date"
    assert len(sp500_raw) == 5031
    assert str(sp500_raw.index[0].date()) == "1999-01-04"
    assert sp500_raw["Close"].iloc[0] == pytest.approx(1228.099976)


def test_column_names_match_ignoring_case_spaces_and_underscores(
    sp500_csv_lines: list[str], csv_file: Callable[..., Path]
) -> None:
    lines = [
        "\ufeff DATE ,open,HIGH,low,Close,adj_close,Volume,Dividends",
        *(line + ",0" for line in sp500_csv_lines[1:20]),
    ]
    data = read_ohlcv(csv_file(lines))
    assert list(data.frame.columns) == RAW_COLUMNS
    assert len(data.frame) == 19


def test_adj_close_is_optional(sp500_csv_lines: list[str], csv_file: Callable[..., Path]) -> None:
    lines = [
        ",".join(c for i, c in enumerate(line.split(",")) if i != 5)
        for line in sp500_csv_lines[:10]
    ]
    frame = read_ohlcv(csv_file(lines)).frame
    assert frame["Adj Close"].isna().all()
    assert frame["Close"].notna().all()


def test_parquet_rows_are_named_by_row_number(tmp_path: Path, sp500_raw: pd.DataFrame) -> None:
    frame = sp500_raw.iloc[:10].copy()
    frame.iloc[3, frame.columns.get_loc("Volume")] = -5.0
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(UserErrors) as caught:
        read_ohlcv(path)
    assert caught.value.lines() == [f"{path}: row 4 (1999-01-07): negative volume"]


def test_iso_dates_and_gzip_are_read(tmp_path: Path, sp500_raw: pd.DataFrame) -> None:
    path = tmp_path / "spy.csv.gz"
    sp500_raw.iloc[:15].to_csv(path)  # ISO dates, gzip by extension
    frame = read_ohlcv(path).frame
    np.testing.assert_allclose(frame.to_numpy(), sp500_raw.iloc[:15].to_numpy())
    assert frame.index.equals(sp500_raw.index[:15])
