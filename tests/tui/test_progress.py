"""Campaign-wide progress and ETA (hpotui/progress.py), as the header and --batch show it."""

from __future__ import annotations

import pytest

from engine.protocol import ExperimentStatus
from hpotui.progress import Progress, budget_params, campaign_progress, concurrency


def row(name: str, budget: str, state: str, n_trials: int, done: int = 0) -> ExperimentStatus:
    return ExperimentStatus(
        name,
        0,
        budget,
        1,
        "t",
        state,
        n_trials,
        n_complete=done,  # type: ignore[arg-type]
    )


def test_budget_labels_are_parameter_counts() -> None:
    assert budget_params("20K") == 20_000
    assert budget_params("2M") == 2_000_000
    assert budget_params("1.5B") == 1.5e9
    assert budget_params("big") is None


def test_eta_uses_each_experiments_own_mean_then_scales_by_budget() -> None:
    queue = [row("2M_h1", "2M", "running", 10, done=4), row("20M_h1", "20M", "queued", 10)]
    # 2M trials took 60 s each: 6 left = 360 s; 20M not started: 10x per trial, 10 left
    progress = campaign_progress(queue, {"2M_h1": [50.0, 70.0, 60.0, 60.0]}, pace=1.0)
    assert progress == Progress(done=4, total=20, eta_s=pytest.approx(360 + 6000))
    doubled = campaign_progress(queue, {"2M_h1": [60.0] * 4}, pace=2.0)
    assert doubled.eta_s == pytest.approx((360 + 6000) / 2)
    assert progress.label() == "4/20 trials · 1h46m left"


def test_the_pace_is_measured_not_the_worker_count() -> None:
    """Two trials at a time were measured (2 cores): a third worker, just added, does
    not make the ETA promise a third less (19m14s instead of 28m50s, seen)."""
    pairs = [(s, s + 60.0) for k in range(10) for s in (k * 60.0, k * 60.0)]
    assert concurrency(pairs) == pytest.approx(2.0)
    queue = [row("a", "2M", "running", 60, done=20)]
    progress = campaign_progress(queue, {"a": [60.0] * 20}, concurrency(pairs))
    assert progress.eta_s == pytest.approx(40 * 60 / 2)  # 20 min, whatever the workers


def test_fused_groups_count_every_trial_they_run() -> None:
    """2 workers training groups of 4: 8 trials in progress at once."""
    group = [(100.0 * k, 100.0 * k + 100.0) for k in range(5) for _ in range(8)]
    assert concurrency(group) == pytest.approx(8.0)


def test_the_pace_is_the_last_hour_and_counts_running_trials() -> None:
    old = [(0.0, 600.0)] * 4  # four at a time, long ago
    recent = [(10_000.0 + 600 * k, 10_600.0 + 600 * k) for k in range(6)]  # one at a time
    assert concurrency(old + recent) == pytest.approx(1.0)
    running = [(12_000.0, None)]  # started within the hour, still running
    assert concurrency(old + recent + running) > 1.0
    assert concurrency([(5.0, None)]) is None  # nothing ended: not measured


def test_eta_is_unknown_before_any_trial_was_measured() -> None:
    progress = campaign_progress([row("2M_h1", "2M", "queued", 5)], {}, pace=None)
    assert progress.eta_s is None
    assert progress.label() == "0/5 trials · ETA unknown"


def test_skipped_experiments_and_finished_ones_count_what_they_ran() -> None:
    queue = [
        row("a", "2M", "done", 10, done=7),  # ended by a timeout after 7
        row("b", "2M", "skipped", 10, done=2),
        row("c", "2M", "done", 1, done=1),
    ]
    progress = campaign_progress(queue, {"a": [1.0]}, pace=1.0)
    assert (progress.done, progress.total, progress.eta_s) == (8, 8, 0.0)
    assert progress.label() == "8/8 trials · done"
    one = campaign_progress([row("c", "2M", "queued", 1)], {}, pace=None)
    assert one.label() == "0/1 trial · ETA unknown"


def test_counts_seen_before_the_queue_event_replace_the_queues() -> None:
    queue = [row("a", "2M", "running", 4, done=1)]
    assert campaign_progress(queue, {"a": [2.0, 2.0]}, 1.0, counts={"a": 2}).done == 2
