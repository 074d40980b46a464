"""`hpotui --batch`'s lines, from the events it folds: the `done` line after that
experiment's last trial line, a progress line that agrees with itself, trial lines that
fit the terminal (no wrap onto a stray `)`)."""

from __future__ import annotations

import io

from rich.console import Console

from engine import protocol as p
from hpotui.batch import BatchView

REASON = (
    "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"
)


def status(running: int, done: int) -> p.QueueSnapshot:
    row = p.ExperimentStatus(
        "20K_h1",
        0,
        "20K",
        1,
        "t",
        "running" if running else "done",
        4,
        n_complete=done,
        n_running=running,
    )
    return p.QueueSnapshot(experiments=[row], workers=2)


def started(n: int) -> p.TrialStarted:
    return p.TrialStarted(
        "20K_h1",
        n,
        {},
        {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 64},
        20_412,
        "w1",
        "h",
        ts=100.0 + n,
    )


def finished(n: int, state: str = "complete", reason: str = "") -> p.TrialFinished:
    value = None if state != "complete" else 0.65
    arch = {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 64}
    return p.TrialFinished(
        "20K_h1", n, state, value, 60.0, "w1", "h", arch, 20_412, {}, reason, ts=160.0 + n
    )  # type: ignore[arg-type]


def view(width: int, terminal: bool = True) -> tuple[BatchView, io.StringIO]:
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=terminal,
        color_system=None,
        highlight=False,
        soft_wrap=True,
    )
    return BatchView(console), out


def test_the_done_line_comes_after_the_experiments_last_trial_line() -> None:
    """The engine may announce the experiment done (its refresh saw the storage) before
    the last trial's own event arrives from its worker's pipe."""
    batch, out = view(160)
    batch.handle(status(running=2, done=2))
    batch.handle(started(2))
    batch.handle(started(3))
    batch.handle(finished(2))
    batch.handle(p.ExperimentFinished(experiment="20K_h1", state="done", best_value=0.65))
    batch.handle(finished(3))
    lines = out.getvalue().splitlines()
    assert next(i for i, line in enumerate(lines) if "trial #3" in line) < next(
        i for i, line in enumerate(lines) if "20K_h1 done" in line
    ), lines


def test_the_progress_line_agrees_with_itself() -> None:
    """`2 running` for the experiment and the campaign, from one snapshot (it said 2 and
    0 when the trials had started before this front-end attached)."""
    batch, _ = view(200)
    batch.handle(
        p.ExperimentTrials(
            experiment="20K_h1",
            study_name="s",
            trials=[
                p.TrialRecord(0, "running", started_ts=1.0),
                p.TrialRecord(1, "running", started_ts=2.0),
            ],
        )
    )
    batch.handle(status(running=2, done=0))
    line = batch.progress().plain
    assert "2/4" not in line and "0/4, 2 running" in line and "], 2 running" in line, line


def test_trial_lines_fit_the_terminal_and_keep_the_reason_whole() -> None:
    for width in (80, 100, 160):
        batch, out = view(width)
        batch.handle(status(running=1, done=0))
        batch.handle(started(0))
        batch.handle(finished(0, "failed", REASON))
        lines = out.getvalue().splitlines()
        assert all(len(line) <= width for line in lines), (width, lines)
        assert "trial #0" in lines[0] and "failed" in lines[0]
        assert not any(line.strip() in (")", "") for line in lines), lines
        assert lines[1].strip().startswith("RuntimeError: CUDA out of memory")
    batch, out = view(80, terminal=False)  # piped: every field, the reason on the line
    batch.handle(status(running=1, done=0))
    batch.handle(finished(0, "failed", REASON))
    [line] = out.getvalue().splitlines()
    assert "20,412 params" in line and line.endswith(f"({REASON})")
