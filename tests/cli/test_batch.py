"""`hpotui --batch` end to end on a real (micro) campaign: interrupt, resume, complete."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine import protocol as p

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parents[1] / "engine" / "fixtures"


def _batch(workspace: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hpotui.cli", "--batch", *args],
        cwd=workspace,
        env={**os.environ, "HPOTUI_HOME": str(workspace)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_interrupt_resume_and_complete(workspace: Path) -> None:
    config = workspace / "micro.toml"
    config.write_text((FIXTURES / "micro.toml").read_text())

    # --json: raw events; Ctrl-C once after the first finished trial -> 130
    run = _batch(workspace, str(config), "--json", "--workers", "1")
    assert run.stdout is not None
    lines = []
    for line in run.stdout:
        lines.append(line)
        if json.loads(line)["type"] == "trial_finished":
            run.send_signal(signal.SIGINT)
            break
    rest, _ = run.communicate(timeout=120)
    lines += rest.splitlines()
    assert run.returncode == 130
    events = [p.decode_event(line) for line in lines if line.strip()]
    assert isinstance(events[0], p.Hello) and isinstance(events[-1], p.Bye)
    assert any(isinstance(e, p.Reply) and e.ok and "stopping" in e.message for e in events)
    finished_first = [e for e in events if isinstance(e, p.TrialFinished)]

    # the same command again resumes and completes: one readable line per trial
    run = _batch(workspace, str(config), "--workers", "2")
    out, err = run.communicate(timeout=240)
    assert run.returncode == 0, err
    assert "resuming" in out
    # the pre-flight, one line per check group, before the first trial line
    pre = [line for line in out.splitlines() if line.startswith("pre-flight ")]
    assert [line.split(":")[0] for line in pre][:3] == [
        "pre-flight campaign",
        "pre-flight storage",
        "pre-flight outputs",
    ]
    assert any(line.startswith("pre-flight memory") for line in pre)
    assert out.index("pre-flight") < out.index("val_bce")
    trial_lines = [line for line in out.splitlines() if " trial " in line and "val_bce" in line]
    complete_first = sum(e.state == "complete" for e in finished_first)
    assert len([x for x in trial_lines if "complete" in x]) == 8 - complete_first
    # each line: the campaign-wide counter and ETA, then the experiment's counted ordinal
    heads = [
        re.match(r"\[(\d+)/(\d+) trials · ([^\]]+)\] (\S+) +(\d+|-)/(\d+) +trial #", x)
        for x in trial_lines
    ]
    assert all(heads), trial_lines
    counted_first = sum(e.state != "interrupted" for e in finished_first)
    done = [int(h.group(1)) for h in heads if h and h.group(5) != "-"]
    assert done == list(range(counted_first + 1, counted_first + 1 + len(done)))
    assert heads[-1] and heads[-1].group(1) == heads[-1].group(2)  # the last says n/n
    assert heads[-1].group(3) == "done"
    # durations stored by the first run make the ETA known from the first resumed line
    assert all(h and h.group(3).endswith("left") for h in heads[:-1]), trial_lines
    assert "best architecture per experiment" in out
    assert "1.8K_h1" in out.split("best architecture")[1]
    assert "d8-L1-h2-ff" in out.split("best architecture")[1]

    # and once more: nothing to do, says so
    run = _batch(workspace, str(config))
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert "is complete" in out


def test_config_error_exits_2_with_the_problem_and_starts_nothing(workspace: Path) -> None:
    config = workspace / "bad.toml"
    config.write_text('[campaign]\nname = "bad"\n[grid]\nbudgets = ["2M"]\nhorizons = [0]\n')
    run = _batch(workspace, str(config))
    _, err = run.communicate(timeout=120)
    assert run.returncode == 2
    assert "bad.toml" in err and "horizons" in err
    assert not (workspace / "outputs" / "bad").exists()  # no storage, no trial


def test_a_bad_pidless_margin_exits_2_naming_the_variable_before_any_write(
    workspace: Path,
) -> None:
    config = workspace / "micro.toml"
    config.write_text((FIXTURES / "micro.toml").read_text())
    env = {**os.environ, "HPOTUI_HOME": str(workspace), "HPOTUI_PIDLESS_MARGIN": "soon"}
    run = subprocess.run(
        [sys.executable, "-m", "hpotui.cli", "--batch", str(config)],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpotui: $HPOTUI_PIDLESS_MARGIN: expected")
    assert not (workspace / "outputs" / "micro").exists()  # no storage, no trial


@pytest.mark.parametrize("workers", ["zero", "0", "-2"])
def test_a_bad_worker_count_is_a_usage_error_before_anything_starts(
    workspace: Path, workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpotui.cli import main

    config = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"
    with pytest.raises(SystemExit) as exit_info:
        main(["--batch", str(config), "--workers", workers])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--workers" in err and "Traceback" not in err
    assert list((workspace / "outputs").iterdir()) == []  # no engine, no storage


def test_preflight_summary_has_one_line_per_check_group() -> None:
    from hpotui.batch import preflight_summary

    lines = [
        "campaign demo: 2 experiment(s)",
        "storage: outputs/demo/optuna.journal",
        "outputs: outputs/demo",
        "dataset SP500/a25/v1: 5000 rows 2005-01-03 .. 2024-12-31, 25 features, sha256 ab verified",
        "20K_h1: h1 threshold_1pct (high): windows 3000/500/500, label rate 0.21/0.22/0.20",
        "20K_h5: h5 threshold_1pct (high): windows 3000/500/500, label rate 0.31/0.30/0.29",
        "20K_h1: budget 20K: 12 architectures (10K .. 20K), 4 extremes",
        "20K_h1: largest d32-L2 ~40M at batch 256 vs 8G usable on cpu: fits",
        "something new",
    ]
    summary = preflight_summary(lines)
    assert [line.split(":")[0] for line in summary] == [
        "campaign",
        "storage",
        "outputs",
        "data",
        "splits",
        "grids",
        "memory",
        "other",
    ]
    assert summary[4].startswith("splits: 2 checks, e.g. 20K_h1: h1")
    assert summary[1] == "storage: outputs/demo/optuna.journal"


def test_trial_lines_name_the_objective_and_show_auc_as_auc() -> None:
    """Under objective = "val_auc" the stored value is 1 - ROC-AUC: the line says
    `val_auc 0.688`, never `val_bce 0.3120` (issue 22, item 8)."""
    import io

    from rich.console import Console

    from engine import protocol as p
    from hpotui.batch import BatchView

    view = BatchView(Console(file=io.StringIO(), width=200))
    statuses = [
        p.ExperimentStatus("20K_h1", 0, "20K", 1, "threshold_1pct", "running", 6,
                           objective="val_auc"),
        p.ExperimentStatus("20K_h5", 1, "20K", 5, "threshold_1pct", "running", 6),
    ]  # fmt: skip
    view.handle(p.QueueSnapshot(statuses, workers=1))
    for name, value in (("20K_h1", 0.312), ("20K_h5", 0.4469)):
        view.handle(p.TrialFinished(name, 0, "complete", value, 1.0, "w0", "host"))
    text = view.console.file.getvalue()  # type: ignore[attr-defined]
    assert "val_auc 0.6880" in text and "0.3120" not in text
    assert "val_bce 0.4469" in text
    summary = Console(file=io.StringIO(), width=200)
    summary.print(view.summary(None))
    assert "best (objective)" in summary.file.getvalue()  # type: ignore[attr-defined]
