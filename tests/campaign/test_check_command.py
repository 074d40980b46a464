"""`hpotui check` as a user runs it: a real process, its output and its exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpotui.cli import main
from tests.campaign.conftest import ROOT


def hpotui(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HPOTUI_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "hpotui.cli", *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_passes_on_a_good_campaign_and_starts_nothing(data_workspace: Path) -> None:
    result = hpotui(data_workspace, "check", str(ROOT / "configs" / "tiny.toml"))
    assert result.returncode == 0, result.stderr
    assert "10K_h1: budget 10K:" in result.stdout and "extremes" in result.stdout
    assert "windows train" in result.stdout and "largest" in result.stdout
    assert result.stdout.rstrip().endswith("ok: 2 experiment(s) ready")
    assert result.stderr == ""
    assert list((data_workspace / "outputs").iterdir()) == []


def test_check_lists_every_problem_and_exits_2(
    data_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "configs" / "tiny.toml").read_text()
    text = text.replace('tier = "a25"', 'tier = "a25"\nn_trails = 3').replace("[1]", "[0]")
    (data_workspace / "bad.toml").write_text(text)
    assert main(["check", "bad.toml"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "hpotui: bad.toml:12: defaults.n_trails: unknown key (did you mean n_trials?)",
        "hpotui: bad.toml:47: grid.horizons: expected an integer >= 1, got 0",
    ]
    assert list((data_workspace / "outputs").iterdir()) == []


def test_check_defaults_to_the_demo_campaign(
    data_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--storage", "sqlite:///:memory:"]) == 2
    out, err = capsys.readouterr()
    assert f"checking {ROOT / 'configs' / 'demo.toml'}" in out
    assert err.strip() == (
        "hpotui: --storage: storage sqlite:///:memory:: an in-memory database loses the "
        "campaign on exit; name a file"
    )
