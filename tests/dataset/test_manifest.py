"""Manifests: readable JSON, re-hashed on load and verify, tampering is loud."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from engine.dataset import manifest
from engine.dataset.build import build_dataset, import_raw
from engine.dataset.features import tier_columns
from engine.dataset.manifest import load_processed, verify_all
from engine.errors import UserError


@pytest.fixture
def built(workspace: Path) -> manifest.ProcessedEntry:
    return build_dataset("SP500", "a25", 1)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_manifests_are_readable_json_with_every_field(
    workspace: Path, built: manifest.ProcessedEntry
) -> None:
    raw = json.loads((workspace / "data/manifests/raw.json").read_text())
    processed = json.loads((workspace / "data/manifests/processed.json").read_text())
    [raw_entry] = raw["datasets"]
    [entry] = processed["datasets"]
    assert raw_entry["name"] == "SP500"
    assert raw_entry["path"] == "data/raw/SP500.parquet"
    assert raw_entry["rows"] == 5031
    assert (raw_entry["start"], raw_entry["end"]) == ("1999-01-04", "2018-12-31")
    assert entry["path"] == "data/processed/v1/SP500_a25.parquet"
    assert (entry["name"], entry["tier"], entry["version"]) == ("SP500", "a25", 1)
    assert entry["columns"] == tier_columns("a25")
    assert entry["inputs"] == {"SP500": raw_entry["sha256"]}
    assert entry["sha256"] == manifest.sha256_file(workspace / entry["path"])
    assert entry["created"].endswith("Z")
    assert "\n  " in (workspace / "data/manifests/processed.json").read_text()  # indented
    assert not list((workspace / "data").rglob("*.tmp"))


def test_load_processed_returns_the_tier_columns_indexed_by_date(
    built: manifest.ProcessedEntry,
) -> None:
    frame, entry = load_processed("SP500", "a25", 1)
    assert entry == built
    assert list(frame.columns) == tier_columns("a25")
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.name == "Date"
    assert len(frame) == entry.rows == 4832
    assert str(frame.index[0].date()) == entry.start
    assert not frame.isna().any().any()


def test_a_changed_byte_is_reported_by_verify_and_refused_by_load(
    built: manifest.ProcessedEntry,
) -> None:
    assert verify_all() == []
    _flip_byte(built.file(), built.file().stat().st_size // 2)
    problems = verify_all()
    assert len(problems) == 1
    assert "processed SP500/a25/v1: checksum mismatch" in problems[0]
    assert str(built.file()) in problems[0]
    with pytest.raises(UserError, match="checksum mismatch"):
        load_processed("SP500", "a25", 1)


def test_missing_files_and_changed_raw_data_are_reported(
    workspace: Path, built: manifest.ProcessedEntry
) -> None:
    raw = manifest.find_raw("SP500")
    assert raw is not None
    _flip_byte(raw.file(), 100)
    built.file().unlink()
    problems = verify_all()
    assert problems[0].startswith("raw SP500: checksum mismatch")
    assert problems[1] == f"processed SP500/a25/v1: missing file {built.file()}"
    with pytest.raises(UserError, match="missing file"):
        load_processed("SP500", "a25", 1, verify=False)


def test_a_processed_set_whose_raw_input_was_replaced_is_stale(
    workspace: Path, built: manifest.ProcessedEntry, tmp_path: Path
) -> None:
    raw = pd.read_parquet(workspace / "data/raw/SP500.parquet").iloc[:-1]
    raw.to_csv(tmp_path / "shorter.csv")
    import_raw(tmp_path / "shorter.csv", "SP500", force=True)
    [problem] = verify_all()
    assert problem.startswith("processed SP500/a25/v1: raw SP500 changed since the build")
    assert "--version 2" in problem


def test_an_absent_dataset_names_the_command_to_run(workspace: Path) -> None:
    with pytest.raises(UserError) as caught:
        load_processed("SPY", "a25", 3)
    assert "dataset SPY/a25/v3" in str(caught.value)
    assert "hpotui data build --ticker SPY --tier a25 --version 3" in str(caught.value)


def test_an_unreadable_manifest_names_its_file(workspace: Path) -> None:
    path = workspace / "data/manifests/processed.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(UserError, match=r"processed\.json: unreadable manifest"):
        verify_all()
