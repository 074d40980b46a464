"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def run_choice_rules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Trials in tests run by the rules, not by timings (engine.train.autotune): a choice
    timed under the suite's load would differ between runs. Set in the environment, so
    engine and worker subprocesses follow it; the cache is a temp dir, never the user's.
    tests/train/test_autotune.py turns timing on where it tests it."""
    saved = {k: os.environ.get(k) for k in ("HPOTUI_AUTOTUNE", "HPOTUI_CACHE_DIR")}
    os.environ["HPOTUI_AUTOTUNE"] = "off"
    os.environ["HPOTUI_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hpotui workspace (data/, outputs/) in a temp dir, as $HPOTUI_HOME."""
    monkeypatch.setenv("HPOTUI_HOME", str(tmp_path))
    (tmp_path / "outputs").mkdir()
    return tmp_path
