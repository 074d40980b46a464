"""A full disk mid-run, on a real tmpfs mounted as the workspace's outputs/: the run stops with exit 3 and one line naming the path, the
journal keeps every completed trial, and the same command resumes and completes.
Needs permission to mount (root in CI containers); skipped elsewhere."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.env_faults import EXIT_ENVIRONMENT, describe_fault
from engine.journal_check import scan

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parents[1] / "engine" / "fixtures"


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


def _fill(outputs: Path) -> None:
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={outputs / 'fill'}", "bs=1M", "count=400"],
        capture_output=True,
        check=False,
    )


def _unfill(outputs: Path) -> None:
    (outputs / "fill").unlink()


@pytest.mark.parametrize(
    ("fault", "repair", "words"),
    # Outputs made read-only are covered by the unit test above only: root (CI) ignores
    # permission bits, and a tmpfs with files open for writing cannot be remounted ro.
    [(_fill, _unfill, "the disk is full")],
    ids=["disk-full"],
)
def test_fault_mid_run_stops_with_exit_3_and_the_campaign_resumes(
    tmpfs_outputs: Path,
    fault,
    repair,
    words: str,  # type: ignore[no-untyped-def]
) -> None:
    workspace = tmpfs_outputs.parent
    shutil.copy(FIXTURES / "micro.toml", workspace / "micro.toml")
    env = {**os.environ, "HPOTUI_HOME": str(workspace)}
    command = [sys.executable, "-m", "hpotui.cli", "--batch", "micro.toml", "--workers", "1"]
    run = subprocess.Popen(
        command, cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert run.stdout is not None
    for line in run.stdout:
        if " trial " in line and "complete" in line:
            fault(tmpfs_outputs)
            break
    out, err = run.communicate(timeout=300)
    assert run.returncode == EXIT_ENVIRONMENT, out + err
    assert "Traceback" not in out + err
    journal = tmpfs_outputs / "micro" / "optuna.journal"
    [line] = [x for x in out.splitlines() if x.startswith("cannot write ")]
    assert words in line and str(tmpfs_outputs) in line and "run the same command again" in line
    assert scan(journal).good_end == journal.stat().st_size  # no half record left

    repair(tmpfs_outputs)
    again = subprocess.run(
        command, cwd=workspace, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming" in again.stdout and "campaign complete" in again.stdout
