"""A workspace that already holds the embedded S&P 500 dataset, built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def built_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/ of a workspace where SP500/a25/v1 was built by the real pipeline."""
    home = tmp_path_factory.mktemp("built")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPOTUI_HOME", str(home))
        from engine.dataset.build import ensure_dataset

        ensure_dataset("SP500", "a25", 1)
    return home / "data"


@pytest.fixture
def data_workspace(workspace: Path, built_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The `workspace` fixture plus a copy of the built dataset; cwd is the workspace."""
    shutil.copytree(built_data, workspace / "data")
    monkeypatch.chdir(workspace)
    return workspace


def write_config(folder: Path, text: str, name: str = "c.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path
