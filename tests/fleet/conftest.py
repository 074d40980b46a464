"""Fixtures of the multi-machine tests: a real PostgreSQL server and machine workspaces."""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.pg_server import find_bin_dir, running_server

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_ROWS = 600  # raw rows of the TINY dataset: 400 after the a25 tier's warm-up


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throw-away PostgreSQL server (password auth) for this test session."""
    if find_bin_dir() is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not installed; .ci/run installs them"
        )
    with running_server() as url:
        yield url


def build_tiny(home: Path, rows: int = TINY_ROWS) -> str:
    """Build dataset TINY/a25/v1 in workspace `home` from the first `rows` days of the
    embedded S&P 500 sample; returns its sha256."""
    from engine import paths
    from engine.dataset.build import build_dataset, import_raw

    before = os.environ.get("HPOTUI_HOME")
    os.environ["HPOTUI_HOME"] = str(home)
    try:
        with gzip.open(paths.SOURCE_ROOT / "data" / "samples" / "sp500.csv.gz", "rt") as f:
            lines = f.read().splitlines()[: rows + 1]
        source = home / "tiny.csv"
        source.write_text("\n".join(lines) + "\n")
        import_raw(source, "TINY")
        return build_dataset("TINY", "a25", 1).sha256
    finally:
        if before is None:
            del os.environ["HPOTUI_HOME"]
        else:
            os.environ["HPOTUI_HOME"] = before


def copy_machine(source: Path, target: Path) -> Path:
    """Another machine's workspace holding a copy of `source`'s data (as rsync would)."""
    target.mkdir(parents=True)
    shutil.copytree(source / "data", target / "data")
    (target / "outputs").mkdir()
    return target
