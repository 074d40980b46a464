"""A worker node whose worker meets a full disk stops with that worker's line (exit 3),
not a restart loop: `hpotui worker` on a journal file, the fault injected into the
node's worker processes (their second trial raises ENOSPC, as a write on a full disk
does); the same command then resumes the campaign to completion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from engine.env_faults import EXIT_ENVIRONMENT
from engine.storage.queue import T_INTERRUPTED
from tests.full_disk import full_disk_env

pytestmark = pytest.mark.slow
MICRO = Path(__file__).resolve().parents[1] / "engine" / "fixtures" / "micro.toml"


def _trials(journal: Path) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    return [
        t
        for summary in optuna.get_all_study_summaries(storage)
        for t in optuna.load_study(study_name=summary.study_name, storage=storage).trials
    ]


def test_a_node_worker_on_a_full_disk_stops_the_node_with_its_line(tmp_path: Path) -> None:
    workspace = tmp_path / "node"
    (workspace / "outputs").mkdir(parents=True)
    shutil.copy(MICRO, workspace / "micro.toml")
    journal = workspace / "shared.journal"
    command = [
        *(sys.executable, "-m", "hpotui.cli", "worker", "--storage", str(journal)),
        *("micro.toml", "--workers", "1", "--no-monitor"),
    ]
    env = full_disk_env(tmp_path / "inject", "engine.fleet.node_worker", "/full/disk/data.parquet")
    env["HPOTUI_HOME"] = str(workspace)
    run = subprocess.run(
        command, cwd=workspace, env=env, capture_output=True, text=True, timeout=300
    )

    assert run.returncode == EXIT_ENVIRONMENT, run.stdout + run.stderr
    faults = [line for line in run.stdout.splitlines() if "cannot write" in line]
    assert len(faults) == 1, run.stdout  # said once, as the node's stop line
    _, line = faults[0].split(" ", 1)  # after the time of day
    assert line.startswith("error: cannot write /full/disk/data.parquet: the disk is full"), line
    assert "run the same command again to resume" in faults[0]
    assert "exited with code" not in run.stdout  # not a crash, not restarted
    assert "Traceback" not in run.stdout + run.stderr
    trials = _trials(journal)
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    [stopped] = [t for t in trials if t.state == TrialState.FAIL]
    assert T_INTERRUPTED in stopped.user_attrs  # re-run on resume, never counted

    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")  # the disk has room again
    again = subprocess.run(
        command, cwd=workspace, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    done = [t for t in _trials(journal) if t.state == TrialState.COMPLETE]
    assert len(done) == 8  # 2 experiments x 4 trials: exact counts after the resume
