"""The bad-config corpus: each file in bad_configs/ is one kind of mistake.

Each goes through the real CLI, `hpotui check FILE`, and a sample of them through
`hpotui --batch FILE` too (the engine's own pre-flight, over its pipes), in a workspace holding the built embedded
dataset, and must give exit 2 and exactly one line on stderr that names its location
and says what is wrong, with nothing created under outputs/ or in storage. Many are
cascades: one mistake that makes a later check fail (a purge of 5000 empties the
validation split; n_layers = [400] leaves no architecture within the budget); the line
names the key the user wrote, not the check that tripped, and says it once however many
experiments it reaches.

A corpus file's header says what it is:
    # kind: what mistake this is
    # expect: text the one error line must contain (":LINE: key: message")
    # setup: optional name of a workspace change below (tampered data, blocked outputs)
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from hpotui.cli import main

CORPUS = Path(__file__).parent / "bad_configs"
FILES = sorted(CORPUS.glob("*.toml"))


def _tamper_dataset(home: Path) -> None:
    """Change one byte of the processed file behind the manifest's back."""
    path = home / "data" / "processed" / "v1" / "SP500_a25.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _dataset_without_column(home: Path) -> None:
    """Register SPX/a25/v1: a real, correctly hashed file that lacks one tier column."""
    from engine.dataset import manifest

    frame = pd.read_parquet(home / "data" / "processed" / "v1" / "SP500_a25.parquet")
    frame = frame.drop(columns=["rsi_weekly"])
    path = home / "data" / "processed" / "v1" / "SPX_a25.parquet"
    frame.to_parquet(path)
    sp500 = manifest.find_processed("SP500", "a25", 1)
    assert sp500 is not None
    manifest.put_processed(
        manifest.ProcessedEntry(
            name="SPX",
            tier="a25",
            version=1,
            path=str(path.relative_to(home)),
            sha256=manifest.sha256_file(path),
            rows=len(frame),
            start=sp500.start,
            end=sp500.end,
            columns=[str(c) for c in frame.columns],
            created=manifest.now(),
        )
    )


def _outputs_is_a_file(home: Path) -> None:
    shutil.rmtree(home / "outputs")
    (home / "outputs").write_text("a file where the outputs folder should be\n")


def _blocker_file(home: Path) -> None:
    (home / "blocker").write_text("a file where the storage folder should be\n")


SETUPS: dict[str, Callable[[Path], None]] = {
    "tamper_dataset": _tamper_dataset,
    "dataset_without_column": _dataset_without_column,
    "outputs_is_a_file": _outputs_is_a_file,
    "blocker_file": _blocker_file,
}


def _header(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^# (kind|expect|setup): (.*)$", line)
        if not match:
            break
        fields[match.group(1)] = match.group(2)
    return fields


# `check` and the engine's pre-flight run the same code (run_preflight); what --batch
# adds is the engine subprocess and its pipes (~2 s a file, torch imported). So every
# file goes through `check`, and through `--batch` every file with a workspace change
# and every sixth of the rest, a sample of each stage: TOML, schema, cross-checks,
# data and splits, storage.
BATCH_FILES = [
    path for number, path in enumerate(FILES) if number % 6 == 0 or "setup" in _header(path)
]


def test_corpus_covers_at_least_50_kinds() -> None:
    kinds = {_header(path)["kind"] for path in FILES}
    assert len(kinds) >= 50 and len(kinds) == len(FILES)


CASES = [
    *((path, "check") for path in FILES),
    *((path, "--batch") for path in BATCH_FILES),
]


@pytest.mark.parametrize(
    ("path", "command"), CASES, ids=[f"{path.stem}-{command}" for path, command in CASES]
)
def test_bad_config_gives_one_located_line_and_exit_2(
    path: Path, command: str, data_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = _header(path)
    if "setup" in header:
        SETUPS[header["setup"]](data_workspace)
    config = data_workspace / path.name
    shutil.copy(path, config)
    before = _snapshot(data_workspace)

    code = main([command, path.name])

    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    (line,) = lines
    assert line.startswith("hpotui: "), line
    expect = header["expect"]
    if expect.startswith(":"):  # a config line: "FILE:LINE: key: message"
        assert line.startswith(f"hpotui: {path.name}{expect}"), line
    else:
        assert expect in line, line
    assert "Traceback" not in out + err
    assert _snapshot(data_workspace) == before, f"{command} wrote something"


def _snapshot(home: Path) -> set[str]:
    """Every file and folder outside data/ (storage, outputs): check must add none."""
    return {
        str(p.relative_to(home)) for p in home.rglob("*") if p.relative_to(home).parts[0] != "data"
    }
