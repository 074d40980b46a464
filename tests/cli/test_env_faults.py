"""Faults of the machine mid-run, end to end through `hpotui --batch`: a full disk (a
real tmpfs mounted as the workspace's outputs/, filled) and outputs made read-only
(`chmod -R a-w`, the campaign running where permission bits apply). Each run stops with
exit 3 and one line naming the path and what to do, no traceback and no other complaint,
the journal ending on a complete record; after the repair the same command resumes and
completes, every trial completed before the fault kept as it was and every trial that
was running recorded interrupted and re-run.

Mounting needs root; read-only needs a process that permission bits apply to: as root,
the campaign runs with the capabilities that bypass them dropped (`setpriv`), as any
other user directly. Each is skipped, with the reason, where that is not possible."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from engine.env_faults import EXIT_ENVIRONMENT, describe_fault
from engine.storage.journal_check import scan
from engine.storage.queue import T_INTERRUPTED
from tests.full_disk import full_disk_env

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parents[1] / "engine" / "fixtures"
# root keeps its uid (the interpreter may live under /root, 0700) but loses the
# capabilities that ignore permission bits, for itself and everything it starts
DROP_OVERRIDE = [
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


def test_fault_lines_name_the_path_and_what_to_do() -> None:
    full = describe_fault(OSError(errno.ENOSPC, "No space left on device", "/x/optuna.journal"))
    assert full is not None and "cannot write /x/optuna.journal: the disk is full" in full
    assert "free some space" in full and "run the same command again" in full
    read_only = describe_fault(OSError(errno.EROFS, "Read-only file system", "/x/t.csv"))
    assert read_only is not None and "/x/t.csv: it is not writable" in read_only
    assert describe_fault(OSError(errno.ECONNREFUSED, "refused")) is None
    assert describe_fault(ValueError("x")) is None


@pytest.fixture
def tmpfs_outputs(tmp_path: Path) -> Iterator[Path]:
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300m", "tmpfs", str(outputs)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield outputs
    finally:
        subprocess.run(["umount", "-l", str(outputs)], check=False)


@pytest.fixture
def bound_by_permissions(tmp_path: Path) -> list[str]:
    """The command prefix under which a campaign obeys permission bits: none for an
    ordinary user; for root, `setpriv` dropping the override capabilities, proven by a
    write to a read-only file that must fail."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root ignores permission bits and setpriv (util-linux) is not installed")
    probe = tmp_path / "read-only"
    probe.write_text("")
    probe.chmod(0o444)
    tried = subprocess.run(
        ["setpriv", *DROP_OVERRIDE, "sh", "-c", f"echo x >> {probe}"], capture_output=True
    )
    probe.unlink()
    if tried.returncode == 0:
        pytest.skip("setpriv could not drop CAP_DAC_OVERRIDE here: root still writes anything")
    return ["setpriv", *DROP_OVERRIDE]


def _fill(outputs: Path) -> None:
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={outputs / 'fill'}", "bs=1M", "count=400"],
        capture_output=True,
        check=False,
    )


def _unfill(outputs: Path) -> None:
    (outputs / "fill").unlink()


def _read_only(outputs: Path) -> None:
    subprocess.run(["chmod", "-R", "a-w", str(outputs)], check=True)


def _writable(outputs: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", str(outputs)], check=True)


def _trials(journal: Path) -> dict[tuple[str, int], optuna.trial.FrozenTrial]:
    """(study, trial number) -> trial, read with plain Optuna."""
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    return {
        (summary.study_name, trial.number): trial
        for summary in optuna.get_all_study_summaries(storage)
        for trial in optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(
            deepcopy=False
        )
    }


def _fault_mid_run_then_resume(
    workspace: Path,
    prefix: list[str],
    fault: Callable[[Path], None],
    repair: Callable[[Path], None],
    words: str,
) -> None:
    outputs = workspace / "outputs"
    shutil.copy(FIXTURES / "micro.toml", workspace / "micro.toml")
    env = {**os.environ, "HPOTUI_HOME": str(workspace)}
    command = [
        *prefix,
        sys.executable,
        "-m",
        "hpotui.cli",
        "--batch",
        "micro.toml",
        "--workers",
        "1",
    ]
    run = subprocess.Popen(
        command, cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert run.stdout is not None
    before = []
    for line in run.stdout:
        before.append(line)
        if " trial " in line and "complete" in line:
            fault(outputs)
            break
    out, err = run.communicate(timeout=300)
    out = "".join(before) + out
    assert run.returncode == EXIT_ENVIRONMENT, out + err
    campaign = outputs / "micro"
    logs = "".join(
        (campaign / name).read_text(errors="replace") for name in ("engine.log", "workers.log")
    )
    assert "Traceback" not in out + err + logs and "Fatal Python error" not in logs
    [line] = [x for x in out.splitlines() if x.startswith("cannot write ")]
    assert words in line and str(outputs) in line and "run the same command again" in line
    assert ".tmp" not in line  # the file the user knows, not a temporary name
    assert not [x for x in out.splitlines() if "could not" in x], out  # said once
    journal = campaign / "optuna.journal"
    assert scan(journal).good_end == journal.stat().st_size  # no half record left
    stopped = _trials(journal)
    done = {k: t.value for k, t in stopped.items() if t.state == TrialState.COMPLETE}
    running = [k for k, t in stopped.items() if t.state == TrialState.RUNNING]
    assert done

    repair(outputs)
    again = subprocess.run(
        command, cwd=workspace, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming" in again.stdout and "campaign complete" in again.stdout
    resumed = _trials(journal)
    assert {k: resumed[k].value for k in done} == done  # earlier trials intact
    for key in running:  # running at the fault: recorded interrupted, then re-run
        assert resumed[key].state == TrialState.FAIL and T_INTERRUPTED in resumed[key].user_attrs
    for study in {name for name, _ in resumed}:
        states = [t.state for (name, _), t in resumed.items() if name == study]
        if study.startswith("micro."):  # an experiment: its 4 trials, none left running
            assert states.count(TrialState.COMPLETE) == 4, (study, states)
        assert TrialState.RUNNING not in states


def test_disk_full_mid_run_stops_with_exit_3_and_the_campaign_resumes(
    tmpfs_outputs: Path,
) -> None:
    _fault_mid_run_then_resume(tmpfs_outputs.parent, [], _fill, _unfill, "the disk is full")


def test_outputs_made_read_only_mid_run_stop_with_exit_3_and_the_campaign_resumes(
    tmp_path: Path, bound_by_permissions: list[str]
) -> None:
    workspace = tmp_path / "ws"
    (workspace / "outputs").mkdir(parents=True)
    _fault_mid_run_then_resume(
        workspace, bound_by_permissions, _read_only, _writable, "it is not writable"
    )


def test_a_worker_that_cannot_write_stops_the_run_with_its_line(tmp_path: Path) -> None:
    """The engine stops (exit 3) with the line of the worker that met the fault, not a
    "worker exited with code 3" and a restart; the trial it ran is recorded interrupted
    at the stop (the journal is writable here), and the run resumes."""
    workspace = tmp_path / "ws"
    (workspace / "outputs").mkdir(parents=True)
    shutil.copy(FIXTURES / "micro.toml", workspace / "micro.toml")
    env = full_disk_env(tmp_path / "inject", "engine.worker.pool", "/full/disk/optuna.journal")
    env["HPOTUI_HOME"] = str(workspace)
    command = [sys.executable, "-m", "hpotui.cli", "--batch", "micro.toml", "--workers", "1"]
    run = subprocess.run(
        command, cwd=workspace, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == EXIT_ENVIRONMENT, run.stdout + run.stderr
    [line] = [x for x in run.stdout.splitlines() if x.startswith("cannot write ")]
    assert line.startswith("cannot write /full/disk/optuna.journal: the disk is full")
    assert "exited with code" not in run.stdout and "Traceback" not in run.stdout + run.stderr
    trials = _trials(workspace / "outputs" / "micro" / "optuna.journal")
    [stopped] = [t for t in trials.values() if t.state == TrialState.FAIL]
    assert T_INTERRUPTED in stopped.user_attrs  # at the stop, not left RUNNING
    assert not [t for t in trials.values() if t.state == TrialState.RUNNING]

    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")  # the disk has room again
    again = subprocess.run(
        command, cwd=workspace, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0 and "campaign complete" in again.stdout, again.stdout
