"""Import -> build round trip, immutable versions, and datasets built on demand."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.dataset import manifest
from engine.dataset.build import build_dataset, ensure_dataset, import_raw, ticker_name
from engine.dataset.manifest import load_processed
from engine.errors import UserError


def test_import_then_build_round_trip(
    workspace: Path, sp500_csv_lines: list[str], csv_file: Callable[..., Path]
) -> None:
    lines = sp500_csv_lines[:601]
    lines[10], lines[11] = lines[11], lines[10]  # unsorted input is sorted
    imported = import_raw(csv_file(lines), "^spx")
    assert imported.entry.name == "SPX" and imported.changed
    assert len(imported.warnings) == 1
    assert (workspace / "data/raw/SPX.parquet").is_file()

    entry = build_dataset("SPX", "a25", 2)
    assert entry.path == "data/processed/v2/SPX_a25.parquet"
    assert entry.inputs == {"SPX": imported.entry.sha256}
    frame, loaded = load_processed("SPX", "a25", 2)
    assert loaded == entry
    assert len(frame) == entry.rows == 600 - 199
    source = pd.read_csv(
        csv_file(lines[:1] + sorted(lines[1:], key=lambda s: pd.Timestamp(s.split(",")[0])))
    )
    source.index = pd.DatetimeIndex(
        pd.to_datetime(source.pop("Date"), format="%m/%d/%Y"), name="Date"
    )
    source = source.loc[frame.index]
    for column in ("Open", "High", "Low", "Close", "Volume"):
        np.testing.assert_allclose(
            frame[column].to_numpy(), source[column].to_numpy(), err_msg=column
        )


def test_adj_close_never_reaches_the_features(
    workspace: Path, sp500_raw: pd.DataFrame, tmp_path: Path
) -> None:
    raw = sp500_raw.iloc[:400].copy()
    raw.to_csv(tmp_path / "a.csv")
    raw["Adj Close"] = raw["Adj Close"] * 0.5
    raw.to_csv(tmp_path / "b.csv")
    import_raw(tmp_path / "a.csv", "A")
    import_raw(tmp_path / "b.csv", "B")
    build_dataset("A")
    build_dataset("B")
    a, _ = load_processed("A", "a25", 1)
    b, _ = load_processed("B", "a25", 1)
    pd.testing.assert_frame_equal(a, b)
    assert "Adj Close" not in a.columns


def test_a_built_version_never_changes_silently(
    workspace: Path, sp500_raw: pd.DataFrame, tmp_path: Path
) -> None:
    sp500_raw.iloc[:400].to_csv(tmp_path / "first.csv")
    sp500_raw.iloc[:450].to_csv(tmp_path / "more.csv")
    import_raw(tmp_path / "first.csv", "T")
    first = build_dataset("T")
    assert build_dataset("T") == first  # same inputs: up to date, not rebuilt
    assert import_raw(tmp_path / "first.csv", "T").changed is False
    with pytest.raises(UserError, match=r"raw T exists with different data.*--force"):
        import_raw(tmp_path / "more.csv", "T")
    import_raw(tmp_path / "more.csv", "T", force=True)
    with pytest.raises(UserError, match=r"dataset T/a25/v1: exists.*--version 2.*--force"):
        build_dataset("T")
    assert build_dataset("T", version=2).rows == 450 - 199
    assert build_dataset("T", force=True).rows == 450 - 199


def test_ensure_builds_the_embedded_sample_on_a_fresh_workspace(workspace: Path) -> None:
    entry = ensure_dataset("SP500", "a25", 1)
    assert entry.rows == 4832 and entry.file().is_file()
    assert manifest.find_raw("SP500") is not None
    assert ensure_dataset("SP500", "a25", 1) == entry
    entry.file().unlink()  # a deleted sample build is rebuilt, same data
    again = ensure_dataset("SP500", "a25", 1)
    assert again.sha256 == entry.sha256 and again.file().is_file()
    assert ensure_dataset("NASDAQ", "a25", 1).name == "NASDAQ"


def test_ensure_names_the_command_for_other_datasets(
    workspace: Path, sp500_raw: pd.DataFrame, tmp_path: Path
) -> None:
    with pytest.raises(UserError) as caught:
        ensure_dataset("SPY", "a25", 1)
    assert "hpotui data import FILE --ticker SPY" in str(caught.value)
    assert "hpotui data build --ticker SPY --tier a25 --version 1" in str(caught.value)
    assert not (workspace / "data" / "processed").exists()
    sp500_raw.iloc[:300].to_csv(tmp_path / "spy.csv")
    import_raw(tmp_path / "spy.csv", "SPY")
    with pytest.raises(
        UserError, match=r"dataset SPY/a25/v1: is not built \(run `hpotui data build"
    ):
        ensure_dataset("SPY", "a25", 1)
    with pytest.raises(UserError, match="unknown feature tier"):
        ensure_dataset("SP500", "z9", 1)


def test_parallel_workers_building_the_same_sample_agree(workspace: Path) -> None:
    code = "from engine.dataset.build import ensure_dataset; print(ensure_dataset('SP500', 'a25', 1).sha256)"
    workers = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=60)[0].strip() for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    assert outputs[0] == outputs[1]
    assert [e.sha256 for e in manifest.processed_entries()] == [outputs[0]]
    assert manifest.verify_all() == []


@pytest.mark.parametrize(
    ("ticker", "name"), [("^GSPC", "GSPC"), ("spy", "SPY"), ("BRK.B", "BRK.B")]
)
def test_ticker_names(ticker: str, name: str) -> None:
    assert ticker_name(ticker) == name


def test_a_ticker_cannot_be_a_path() -> None:
    with pytest.raises(UserError, match="invalid ticker"):
        ticker_name("../etc")
