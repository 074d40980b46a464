"""`hpotui data`: import, fetch, build, list and verify market data (docs/data.md).

Heavy imports (pandas, TA-Lib) happen inside the handlers so other subcommands start fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

IMPORT_HELP = """\
Validate a CSV (optionally gzipped) or parquet file of daily OHLCV with Yahoo-style
columns (Date, Open, High, Low, Close, Volume, optional Adj Close; names matched
ignoring case, spaces and underscores; other columns ignored) and store it as
data/raw/TICKER.parquet, registered in data/manifests/raw.json.

Adj Close: kept as its own column in the raw file, never used as a feature and never
used to adjust the other prices: Open, High, Low and Close are prices as traded.

Any bad row (unparseable or duplicate date, text in a number column, missing OHLCV
value, non-positive price, High below Open/Close, Low above Open/Close, negative
volume) or too few rows is reported with its line and date, and nothing is written
(exit 2). Unsorted dates are sorted, with a warning."""

BUILD_HELP = """\
Compute a feature tier (a25: OHLCV + the 20 TA-Lib indicators of the reference
pipeline) from raw data, drop warm-up rows, and store
data/processed/vN/TICKER_TIER.parquet, registered in data/manifests/processed.json.
Without --ticker it builds SP500 from the embedded sample (imported first if absent).
A built version never changes silently: rebuilding it from different raw data needs
--force or a new --version."""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "data", help="import, fetch, build, list and verify datasets"
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    commands = parser.add_subparsers(dest="data_command")

    p = commands.add_parser(
        "import",
        help="validate and store a raw OHLCV file",
        description=IMPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="CSV, CSV.gz or parquet")
    p.add_argument("--ticker", required=True, help="dataset name (a leading ^ is dropped)")
    p.add_argument("--force", action="store_true", help="replace different raw data")
    p.set_defaults(func=run_import)

    p = commands.add_parser(
        "fetch",
        help="download daily OHLCV with yfinance (needs the fetch extra)",
        description="Download daily OHLCV from Yahoo Finance (pip install 'hpotui[fetch]'), "
        "validate it like an imported file and store it as data/raw/TICKER.parquet. "
        "Failed downloads are retried with backoff; prices are unadjusted (Adj Close kept).",
    )
    p.add_argument("ticker", help="Yahoo symbol, e.g. SPY or ^GSPC")
    p.add_argument("--start", help="first day, YYYY-MM-DD")
    p.add_argument("--end", help="day after the last, YYYY-MM-DD")
    p.add_argument("--retries", type=int, default=3, help="tries after the first (default 3)")
    p.add_argument("--force", action="store_true", help="replace different raw data")
    p.set_defaults(func=run_fetch)

    p = commands.add_parser(
        "build",
        help="compute a feature tier from raw data",
        description=BUILD_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tier", default="a25", help="feature tier (default a25)")
    p.add_argument("--ticker", default="SP500", help="raw dataset name (default SP500)")
    p.add_argument("--version", type=int, default=1, help="dataset version (default 1)")
    p.add_argument("--force", action="store_true", help="replace a different build")
    p.set_defaults(func=run_build)

    p = commands.add_parser("list", help="show the raw and processed manifests")
    p.add_argument("--json", action="store_true", help="print the manifests as JSON")
    p.set_defaults(func=run_list)

    p = commands.add_parser("verify", help="re-hash every dataset file (exit 1 on a problem)")
    p.set_defaults(func=run_verify)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"hpotui: warning: {line}", file=sys.stderr)


def _report_raw(imported: Any) -> int:
    entry = imported.entry
    _warn(imported.warnings)
    if not imported.changed:
        print(f"{entry.name}: unchanged (this data is already imported as {entry.path})")
        return 0
    print(
        f"imported {entry.name}: {entry.rows} rows, {entry.start}..{entry.end} -> {entry.path}"
        f" (sha256 {entry.sha256[:12]})"
    )
    return 0


def run_import(args: argparse.Namespace) -> int:
    from engine.dataset.build import import_raw

    return _report_raw(import_raw(args.file, args.ticker, force=args.force))


def run_fetch(args: argparse.Namespace) -> int:
    from engine.dataset.fetch import fetch

    imported = fetch(args.ticker, args.start, args.end, force=args.force, retries=args.retries)
    return _report_raw(imported)


def run_build(args: argparse.Namespace) -> int:
    from engine.dataset import manifest
    from engine.dataset.build import build_dataset, ticker_name

    before = manifest.find_processed(ticker_name(args.ticker), args.tier, args.version)
    entry = build_dataset(args.ticker, args.tier, args.version, force=args.force)
    state = "up to date" if entry == before else "built"
    print(
        f"{state} {entry.key}: {entry.rows} rows, {entry.start}..{entry.end}, "
        f"{len(entry.columns)} columns -> {entry.path} (sha256 {entry.sha256[:12]})"
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    from engine.dataset import manifest

    raw, processed = manifest.raw_entries(), manifest.processed_entries()
    if args.json:
        document = {"raw": [asdict(e) for e in raw], "processed": [asdict(e) for e in processed]}
        print(json.dumps(document, indent=2))
        return 0
    if not raw and not processed:
        print("no datasets yet (run `hpotui data build` for the embedded S&P 500 sample)")
        return 0
    rows = [("RAW", "ROWS", "DATES", "SHA256", "CREATED", "SOURCE / PATH")]
    rows += [
        (
            e.name,
            str(e.rows),
            f"{e.start}..{e.end}",
            e.sha256[:12],
            e.created,
            f"{e.source} -> {e.path}",
        )
        for e in raw
    ]
    _table(rows)
    print()
    rows = [("PROCESSED", "ROWS", "DATES", "SHA256", "CREATED", "COLUMNS / INPUTS / PATH")]
    rows += [
        (
            e.key,
            str(e.rows),
            f"{e.start}..{e.end}",
            e.sha256[:12],
            e.created,
            f"{len(e.columns)} from "
            + ", ".join(f"{n}@{s[:12]}" for n, s in e.inputs.items())
            + f" -> {e.path}",
        )
        for e in processed
    ]
    _table(rows)
    print(f"\nmanifests: {manifest.raw_manifest_path()}, {manifest.processed_manifest_path()}")
    return 0


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[-1]
        )


def run_verify(args: argparse.Namespace) -> int:
    from engine.dataset import manifest

    problems = manifest.verify_all()
    for line in problems:
        print(line)
    if problems:
        print(f"hpotui: {len(problems)} problem(s) found", file=sys.stderr)
        return 1
    raw, processed = len(manifest.raw_entries()), len(manifest.processed_entries())
    print(f"ok: {raw} raw and {processed} processed file(s), every checksum matches")
    return 0
