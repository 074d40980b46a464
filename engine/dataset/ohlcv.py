"""Read a raw daily OHLCV file (CSV, gzipped CSV or parquet) and validate every row.

Columns are Yahoo-style (Date, Open, High, Low, Close, Adj Close, Volume), matched
case-, space- and underscore-insensitively ("adj_close", "ADJ CLOSE"). Other columns are
ignored. Adj Close policy: kept as its own column when present, never used as a feature
and never used to adjust the other prices; OHLC are prices as traded.

Rejections (each names the file, the row with its date where there is one, and the
rule; all row problems are reported together): empty or binary file, missing columns,
unparseable or duplicate dates, text in a numeric column, missing OHLCV values,
non-positive prices, High below Open or Close, Low above Open or Close, negative volume,
fewer rows than the longest indicator window needs. Unsorted dates are sorted, with a
warning. Nothing here writes a file.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine.errors import UserError, UserErrors

REQUIRED = ("Date", "Open", "High", "Low", "Close", "Volume")
PRICES = ("Open", "High", "Low", "Close")
NUMERIC = ("Open", "High", "Low", "Close", "Adj Close", "Volume")
RAW_COLUMNS = ["Open", "High", "Low", "Close", "Adj Close", "Volume"]
MAX_REPORTED = 20
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%Y%m%d", "ISO8601")
_PRICE_TOLERANCE = 1e-9  # relative; float noise in vendor files is not a violation


@dataclass
class Ohlcv:
    """A validated daily series: DatetimeIndex "Date", sorted, unique, RAW_COLUMNS."""

    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def _key(name: object) -> str:
    return re.sub(r"[\s_]+", "", str(name)).lower()


_CANONICAL = {_key(name): name for name in (*REQUIRED, "Adj Close")}


def _sniff(path: Path) -> str:
    """'parquet', 'gzip' or 'csv'; rejects missing, empty and binary files."""
    label = str(path)
    if not path.is_file():
        raise UserError("no such file", where=label, hint="check the path")
    with path.open("rb") as stream:
        head = stream.read(8192)
    if not head:
        raise UserError("empty file", where=label, hint="expected CSV or parquet OHLCV data")
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path) as stream:
                head = stream.read(8192)
        except (OSError, EOFError) as error:
            raise UserError(f"corrupt gzip file ({error})", where=label) from None
        kind = "gzip"
    else:
        kind = "csv"
    if b"\x00" in head:
        raise UserError(
            "binary file, not CSV text", where=label, hint="expected CSV or parquet OHLCV data"
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # a cut multi-byte character at the end is fine
            raise UserError(
                "binary file, not UTF-8 CSV text", where=label, hint="expected CSV or parquet"
            ) from None
    return kind


def _load(path: Path) -> tuple[pd.DataFrame, str]:
    """The file's table with every cell as read, and the row label style."""
    kind = _sniff(path)
    label = str(path)
    if kind == "parquet":
        try:
            table = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises many types for corrupt files
            raise UserError(f"unreadable parquet file ({error})", where=label) from None
        if isinstance(table.index, pd.DatetimeIndex) or table.index.name is not None:
            table = table.reset_index()
        return table, "row"
    try:
        table = pd.read_csv(
            path,
            dtype=str,
            encoding="utf-8-sig",  # a byte-order mark (Excel exports) is not part of "Date"
            keep_default_na=False,
            skip_blank_lines=True,
            compression="gzip" if kind == "gzip" else None,
        )
    except pd.errors.EmptyDataError:
        raise UserError("empty file", where=label, hint="expected a header and rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UserError(f"not a readable CSV file ({error})", where=label) from None
    return table, "line"


def _columns(table: pd.DataFrame, label: str) -> pd.DataFrame:
    if isinstance(table.columns, pd.MultiIndex):  # yfinance: (field, ticker)
        table.columns = table.columns.get_level_values(0)
    renamed: dict[object, str] = {}
    for column in table.columns:
        name = _CANONICAL.get(_key(column))
        if name is not None and name not in renamed.values():
            renamed[column] = name
    table = table.rename(columns=renamed)[list(renamed.values())]
    missing = [name for name in REQUIRED if name not in table.columns]
    if missing:
        raise UserError(
            "missing column(s) " + ", ".join(missing),
            where=label,
            hint="expected Date, Open, High, Low, Close, Volume (Adj Close optional)",
        )
    if table.empty:
        raise UserError("empty file: a header but no rows", where=label)
    return table.reset_index(drop=True)


def _parse_dates(column: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = pd.to_datetime(column)
    else:
        text = column.astype("string").str.strip()
        best: pd.Series | None = None
        for fmt in _DATE_FORMATS:
            attempt = pd.to_datetime(text, format=fmt, errors="coerce")
            if best is None or attempt.notna().sum() > best.notna().sum():
                best = attempt
        assert best is not None
        parsed = best
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    return parsed.dt.normalize().astype("datetime64[ns]")


class _Problems:
    """Collects row-level rejections in file order."""

    def __init__(self, label: str, style: str, dates: pd.Series, raw_dates: pd.Series) -> None:
        self.label, self.style, self.dates, self.raw_dates = label, style, dates, raw_dates
        self.found: list[tuple[int, UserError]] = []

    def where(self, row: int) -> str:
        number = row + 2 if self.style == "line" else row + 1  # CSV line 1 is the header
        date = self.dates.iloc[row]
        shown = str(pd.Timestamp(date).date()) if pd.notna(date) else None
        if shown is None and str(self.raw_dates.iloc[row]).strip():
            shown = str(self.raw_dates.iloc[row]).strip()
        return f"{self.label}: {self.style} {number}" + (f" ({shown})" if shown else "")

    def add(self, mask: np.ndarray | pd.Series, rule: str) -> None:
        for row in np.flatnonzero(np.asarray(mask)):
            self.found.append((int(row), UserError(rule, where=self.where(int(row)))))

    def add_each(self, rows: np.ndarray, rules: list[str]) -> None:
        for row, rule in zip(rows, rules, strict=True):
            self.found.append((int(row), UserError(rule, where=self.where(int(row)))))

    def raise_if_any(self) -> None:
        if not self.found:
            return
        errors = [error for _, error in sorted(self.found, key=lambda item: item[0])]
        shown = errors[:MAX_REPORTED]
        if len(errors) > MAX_REPORTED:
            more = len(errors) - MAX_REPORTED
            shown.append(UserError(f"{more} more problem(s) not shown", where=self.label))
        raise UserErrors(shown)


def _numbers(table: pd.DataFrame, problems: _Problems) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numeric columns as float64 (NaN where missing or text) and the mask of text cells."""
    values = pd.DataFrame(index=table.index)
    text_cells = pd.DataFrame(False, index=table.index, columns=list(NUMERIC))
    for name in NUMERIC:
        if name not in table.columns:
            continue
        column = table[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values[name] = column.astype(np.float64)
            continue
        text = column.astype("string").str.strip().fillna("")
        number = pd.to_numeric(text.where(text != ""), errors="coerce").astype(np.float64)
        is_text = (text != "") & number.isna()
        rows = np.flatnonzero(is_text.to_numpy())
        problems.add_each(rows, [f"text {text.iloc[r]!r} in numeric column {name}" for r in rows])
        values[name] = number
        text_cells[name] = is_text
    return values, text_cells


def _check_rows(values: pd.DataFrame, text_cells: pd.DataFrame, problems: _Problems) -> None:
    for name in (*PRICES, "Volume"):
        problems.add(values[name].isna() & ~text_cells[name], f"missing value in {name}")
    prices = values[list(PRICES)]
    problems.add(
        (prices <= 0).any(axis=1), "non-positive price (Open, High, Low and Close must be > 0)"
    )
    top = values[["Open", "Close"]].max(axis=1, skipna=False)
    bottom = values[["Open", "Close"]].min(axis=1, skipna=False)
    problems.add(values["High"] < top * (1 - _PRICE_TOLERANCE), "High below Open or Close")
    problems.add(values["Low"] > bottom * (1 + _PRICE_TOLERANCE), "Low above Open or Close")
    problems.add(values["Volume"] < 0, "negative volume")


def _check_dates(dates: pd.Series, raw: pd.Series, problems: _Problems) -> None:
    bad = dates.isna()
    rows = np.flatnonzero(bad.to_numpy())
    problems.add_each(rows, [f"unparseable date {str(raw.iloc[r]).strip()!r}" for r in rows])
    duplicated = dates.duplicated(keep=False) & ~bad
    rows = np.flatnonzero(duplicated.to_numpy())
    problems.add_each(rows, ["duplicate date (each date must appear once)"] * len(rows))


def read_ohlcv(path: Path, *, min_rows: int = 1, needed_by: str = "") -> Ohlcv:
    """Read and validate `path`; raises UserError(s) naming file, row and rule.

    `min_rows` is the fewest rows accepted (the longest indicator window of the tier the
    data is for); `needed_by` names that indicator in the message.
    """
    table, style = _load(path)
    return _validate(table, str(path), style, min_rows, needed_by)


def validate_frame(
    table: pd.DataFrame, label: str, *, min_rows: int = 1, needed_by: str = ""
) -> Ohlcv:
    """Validate a table already in memory (a download); same rules as `read_ohlcv`."""
    if isinstance(table.index, pd.DatetimeIndex) or table.index.name is not None:
        table = table.reset_index()
    return _validate(table, label, "row", min_rows, needed_by)


def _validate(table: pd.DataFrame, label: str, style: str, min_rows: int, needed_by: str) -> Ohlcv:
    table = _columns(table, label)
    dates = _parse_dates(table["Date"])
    problems = _Problems(label, style, dates, table["Date"])
    _check_dates(dates, table["Date"], problems)
    values, text_cells = _numbers(table, problems)
    _check_rows(values, text_cells, problems)
    if len(table) < min_rows:
        why = f" for the warm-up of {needed_by}" if needed_by else ""
        message = f"too few rows: {len(table)}, at least {min_rows} needed{why}"
        problems.found.append((len(table), UserError(message, where=label)))
    problems.raise_if_any()
    return _frame(values, dates, problems)


def _frame(values: pd.DataFrame, dates: pd.Series, problems: _Problems) -> Ohlcv:
    warnings: list[str] = []
    if "Adj Close" not in values.columns:
        values["Adj Close"] = np.nan
    frame = values[RAW_COLUMNS].copy()
    frame.index = pd.DatetimeIndex(dates, name="Date")
    if not frame.index.is_monotonic_increasing:
        steps = np.flatnonzero(np.diff(frame.index.asi8) < 0)
        first = problems.where(int(steps[0]) + 1)
        warnings.append(f"{first}: dates are not in order; sorted them")
        frame = frame.sort_index(kind="stable")
    return Ohlcv(frame=frame, warnings=warnings)
