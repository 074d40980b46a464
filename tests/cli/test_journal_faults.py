"""The journal damage a power cut or a stray write leaves, end to end through
`hpotui --batch` and `hpotui check`: a torn tail is cut back and the campaign resumes and
completes with every earlier trial intact; a damaged middle stops with exit 2 and one
message naming the file and byte offset, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend

from engine.storage.journal_check import scan

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parents[1] / "engine" / "fixtures"


def _hpotui(workspace: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hpotui.cli", *args],
        cwd=workspace,
        env={**os.environ, "HPOTUI_HOME": str(workspace)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose micro campaign was stopped (Ctrl-C) after its first trial."""
    workspace = tmp_path_factory.mktemp("interrupted")
    (workspace / "outputs").mkdir()
    shutil.copy(FIXTURES / "micro.toml", workspace / "micro.toml")
    run = _hpotui(workspace, "--batch", "micro.toml", "--json", "--workers", "1")
    assert run.stdout is not None
    for line in run.stdout:
        if json.loads(line)["type"] == "trial_finished":
            run.send_signal(signal.SIGINT)
            break
    _, err = run.communicate(timeout=240)
    assert run.returncode == 130, err
    return workspace


def _complete_trials(journal: Path) -> dict[tuple[str, int], float]:
    """(study, trial number) -> value of every COMPLETE trial, read with plain Optuna."""
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    found = {}
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for trial in study.get_trials(states=[optuna.trial.TrialState.COMPLETE]):
            assert trial.value is not None
            found[(summary.study_name, trial.number)] = trial.value
    return found


def _copy(interrupted: Path, tmp_path: Path) -> tuple[Path, Path]:
    workspace = tmp_path / "ws"
    shutil.copytree(interrupted, workspace)
    return workspace, workspace / "outputs" / "micro" / "optuna.journal"


def _cut_150(data: bytes) -> bytes:
    return data[:-150]


def _garbage(data: bytes) -> bytes:
    return data + b"\x00\xff\xfe garbage\n\x9c\x80 more\n"


def _multibyte_cut(data: bytes) -> bytes:
    return data + '{"op_code":5,"user_attr":{"note":"Zürich'.encode()[:-4]


@pytest.mark.parametrize("damage", [_cut_150, _garbage, _multibyte_cut])
def test_torn_journal_resumes_and_completes_with_every_earlier_trial(
    interrupted: Path, tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    workspace, journal = _copy(interrupted, tmp_path)
    journal.write_bytes(damage(journal.read_bytes()))
    good = tmp_path / "good.journal"
    good.write_bytes(journal.read_bytes()[: scan(journal).good_end])
    earlier = _complete_trials(good)
    assert earlier  # the interrupted run completed trials

    check = _hpotui(workspace, "check", "micro.toml")
    out, err = check.communicate(timeout=240)
    assert check.returncode == 0, err
    assert "last record is incomplete" in out and "Traceback" not in err

    run = _hpotui(workspace, "--batch", "micro.toml", "--workers", "2")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, out + err
    assert "Traceback" not in err
    warnings = [line for line in out.splitlines() if "last record was incomplete" in line]
    assert len(warnings) == 1 and str(journal) in warnings[0]
    assert len(list(journal.parent.glob("optuna.journal.damaged-*"))) == 1
    after = _complete_trials(journal)
    assert {key: after.get(key) for key in earlier} == earlier  # nothing earlier lost
    per_study: dict[str, int] = {}
    for study, _ in after:
        per_study[study] = per_study.get(study, 0) + 1
    assert sorted(per_study.values()) == [4, 4]  # micro: 2 experiments x 4 trials
    assert scan(journal).good_end == journal.stat().st_size


def test_damaged_middle_stops_run_and_check_with_exit_2_naming_the_offset(
    interrupted: Path, tmp_path: Path
) -> None:
    workspace, journal = _copy(interrupted, tmp_path)
    data = journal.read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 1
    damaged = data[:cut] + b'{"op_code": 4, "trial_id\n' + data[cut:]
    journal.write_bytes(damaged)

    for args in (["check", "micro.toml"], ["--batch", "micro.toml"]):
        run = _hpotui(workspace, *args)
        _, err = run.communicate(timeout=240)
        assert run.returncode == 2, err
        assert "Traceback" not in err
        assert str(journal) in err and f"byte {cut}" in err and "truncate -s" in err
    assert journal.read_bytes() == damaged  # nothing appended, nothing cut
    assert not list(journal.parent.glob("optuna.journal.damaged-*"))
