"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hpotui workspace (data/, outputs/) in a temp dir, as $HPOTUI_HOME."""
    monkeypatch.setenv("HPOTUI_HOME", str(tmp_path))
    (tmp_path / "outputs").mkdir()
    return tmp_path
