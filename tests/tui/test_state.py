"""The campaign model folded from events: what each panel reads."""

from __future__ import annotations

import math

from engine.protocol import (
    EpochEnded,
    ExperimentStatus,
    ExperimentTrials,
    HardwareSampled,
    LogLine,
    QueueSnapshot,
    Reply,
    ThermalChanged,
    TrialFinished,
    TrialRecord,
    TrialStarted,
)
from hpotui.state import CampaignState, reading
from tests.tui.fake_link import recorded_events


def _row(name: str, position: int, state: str = "queued") -> ExperimentStatus:
    return ExperimentStatus(
        name=name, position=position, budget="2M", horizon=1, task="t", state=state, n_trials=4
    )  # type: ignore[arg-type]


def _started(trial: int, experiment: str = "a") -> TrialStarted:
    arch = {"d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128}
    return TrialStarted(
        experiment=experiment,
        trial=trial,
        params={},
        architecture=arch,
        n_params=1000,
        worker="w0",
        host="h",
        ts=float(trial),
    )


def _finished(trial: int, state: str, value: float | None, experiment: str = "a") -> TrialFinished:
    return TrialFinished(
        experiment=experiment,
        trial=trial,
        state=state,
        value=value,
        duration_s=1.0,
        worker="w0",
        host="h",
        metrics={"val_auc": 0.6},
        ts=float(trial) + 0.5,
    )  # type: ignore[arg-type]


def test_queue_rows_follow_positions_not_arrival_order() -> None:
    state = CampaignState()
    changed = state.apply(QueueSnapshot(experiments=[_row("b", 1), _row("a", 0)], workers=3))
    assert "queue" in changed
    assert [e.name for e in state.queue] == ["a", "b"]
    assert state.workers == 3


def test_best_and_top_trials_ignore_pruned_failed_and_running() -> None:
    state = CampaignState()
    for n, (st, value) in enumerate(
        [("complete", 0.7), ("pruned", 0.1), ("failed", None), ("complete", 0.5)]
    ):
        state.apply(_started(n))
        state.apply(_finished(n, st, value))
    state.apply(_started(4))  # still running
    best = state.best_trial("a")
    assert best is not None and best.number == 3 and best.value == 0.5
    assert best.auc == 0.6
    assert [t.number for t in state.top_trials("a")] == [3, 0]
    assert [t.number for t in state.running_trials()] == [4]


def test_epochs_build_the_running_trial_curve_and_focus_follows_selection() -> None:
    state = CampaignState()
    state.apply(_started(0, "a"))
    state.apply(_started(0, "b"))
    for epoch in (1, 2):
        state.apply(
            EpochEnded(
                experiment="a",
                trial=0,
                epoch=epoch,
                train_loss=1.0 / epoch,
                val_loss=2.0 / epoch,
                elapsed_s=epoch,
                ts=10.0 + epoch,
            )
        )
    state.apply(
        EpochEnded(experiment="b", trial=0, epoch=1, train_loss=3, val_loss=3, elapsed_s=1, ts=20.0)
    )
    focus = state.focus_trial("a")
    assert focus is not None and focus.experiment == "a"
    assert focus.epochs == [(1, 1.0, 2.0), (2, 0.5, 1.0)]
    other = state.focus_trial("b")  # the loss panel follows the selection
    assert other is not None and other.experiment == "b"
    assert state.focus_trial("nothing-here") is None


def test_hardware_keeps_a_bounded_history_and_unknown_temperatures_stay_unknown() -> None:
    state = CampaignState()
    for i in range(100):
        sample = {
            "cpu_percent_per_core": [10.0, 30.0],
            "temperature_max_c": {"value": None, "unavailable": "no sensor"},
        }
        state.apply(HardwareSampled(sample=sample, ts=float(i)))
    assert len(state.hardware.cpu_history) == 60
    assert state.hardware.cpu_history[-1] == 20.0
    assert [len(h) for h in state.hardware.core_history] == [60, 60]
    assert len(state.hardware.temp_history) == 0  # -1 or 0 are never invented
    assert reading({"value": None, "unavailable": "x"}) is None
    assert reading({"value": 71.5, "unavailable": None}) == 71.5


def test_log_filters_by_level_and_collects_refusals_and_thermal_changes() -> None:
    state = CampaignState()
    state.apply(LogLine(level="debug", message="d"))
    state.apply(LogLine(level="info", message="i"))
    state.apply(Reply(command_id="c1", ok=False, message="no such experiment"))
    state.apply(ThermalChanged(state="paused", previous="ok", reason="90°C"))
    assert state.replies["c1"].ok is False
    assert state.thermal == "paused"
    assert [e.message for e in state.log_since(0, "warning")] == [
        "command refused: no such experiment",
        "thermal paused: 90°C",
    ]
    assert len(state.log_since(0, "debug")) == 4
    assert state.log_since(state.log[-1].seq) == []


def test_recorded_stream_folds_into_a_consistent_campaign() -> None:
    state = CampaignState()
    for event in recorded_events():
        state.apply(event)
    assert [e.name for e in state.queue][:2] == ["2M_h1", "2M_h3"]
    assert state.experiment("2M_h5") is not None
    assert state.experiment("2M_h5").state == "paused"  # type: ignore[union-attr]
    done = state.experiment("2M_h1")
    best = state.best_trial("2M_h1")
    assert done is not None and best is not None and done.best_value == best.value
    assert [t.number for t in state.running_trials()] == [3]
    assert state.hello is not None and state.hello.campaign == "demo"


def test_a_storage_outage_shows_while_it_lasts() -> None:
    from engine.protocol import StorageOutage

    state = CampaignState()
    assert state.outage_status() == ""
    state.apply(StorageOutage(reachable=False, waited_s=0, patience_s=300, error="refused"))
    state.apply(StorageOutage(reachable=False, waited_s=8, patience_s=300, source="w1"))
    state.apply(StorageOutage(reachable=False, waited_s=72.4, patience_s=300, error="refused"))
    assert state.outage_status() == "storage unreachable, retrying (1m12s)"
    state.apply(StorageOutage(reachable=True, waited_s=80, patience_s=300))
    assert state.outage_status() == "storage unreachable, retrying (8s)"  # w1 still waits
    state.apply(StorageOutage(reachable=True, waited_s=9, patience_s=300, source="w1"))
    assert state.outage_status() == ""
    lines = [e.message for e in state.log]
    assert lines[0].startswith("storage unreachable, retrying (0s of 5m00s, engine): refused")
    assert "storage reachable again after 1m20s (engine)" in lines


def test_stored_trials_replace_the_experiments_trials_as_the_storage_holds_them() -> None:
    state = CampaignState()
    state.apply(_started(0))
    state.apply(
        EpochEnded(experiment="a", trial=0, epoch=1, train_loss=0.7, val_loss=0.69, elapsed_s=1)
    )
    state.apply(
        EpochEnded(experiment="a", trial=0, epoch=2, train_loss=0.6, val_loss=0.68, elapsed_s=2)
    )
    stored = ExperimentTrials(
        experiment="a",
        study_name="c.a",
        trials=[
            # running: the storage holds its val losses only; the live epochs are kept
            TrialRecord(0, "running", curve=[[1.0, None, 0.69]]),
            # finished before this front-end started: every field from the storage
            TrialRecord(
                7,
                "complete",
                0.61,
                architecture={"d_model": 32},
                n_params=5000,
                worker="w1@other",
                host="other",
                started_ts=100.0,
                duration_s=50.0,
                metrics={"roc_auc": 0.7},
                curve=[[1.0, 0.8, 0.7], [2.0, None, 0.61]],
            ),
            TrialRecord(8, "failed", reason="OOM", started_ts=10.0, duration_s=1.0),
        ],
    )
    assert {"trials", "curves", "queue"} <= state.apply(stored)
    assert [t.number for t in state.trials_of("a")] == [0, 7, 8]
    assert state.trials["a"][0].epochs == [(1, 0.7, 0.69), (2, 0.6, 0.68)]
    old = state.trials["a"][7]
    assert (old.state, old.value, old.auc, old.worker, old.duration_s) == (
        "complete",
        0.61,
        0.7,
        "w1@other",
        50.0,
    )
    assert old.epochs[0] == (1, 0.8, 0.7)
    assert math.isnan(old.epochs[1][1]) and old.epochs[1][2] == 0.61  # no train loss stored
    assert state.trials["a"][8].reason == "OOM"
    assert state.best_trial("a") is old
    assert state.focus_trial("a") is state.trials["a"][0]  # the live trial stays the subject


def test_a_finished_campaign_shows_the_selected_experiments_best_trial_or_the_chosen_one() -> None:
    state = CampaignState()
    for experiment, ended in (("b", 200.0), ("a", 300.0)):
        state.apply(
            ExperimentTrials(
                experiment=experiment,
                study_name=experiment,
                trials=[
                    TrialRecord(
                        1,
                        "complete",
                        0.6,
                        started_ts=ended - 10,
                        duration_s=10,
                        curve=[[1.0, 0.7, 0.6]],
                    ),
                    TrialRecord(
                        3,
                        "complete",
                        0.65,
                        started_ts=ended,
                        duration_s=10,
                        curve=[[1.0, 0.7, 0.65]],
                    ),
                    # interrupted later, before its first epoch: no curve to show
                    TrialRecord(2, "interrupted", started_ts=ended, duration_s=5),
                ],
            )
        )
    focus = state.focus_trial("a")
    assert focus is not None and (focus.experiment, focus.number) == ("a", 1)  # its best
    focus = state.focus_trial("b")
    assert focus is not None and (focus.experiment, focus.number) == ("b", 1)
    state.pinned["a"] = 3  # opened from the trial table
    focus = state.focus_trial("a")
    assert focus is not None and focus.number == 3
    # a re-run archives the study: its trials (and the chosen one) leave the view
    state.apply(
        QueueSnapshot(
            experiments=[
                ExperimentStatus("a", 0, "2M", 1, "t", "queued", 3, study_name="a.r2"),
                ExperimentStatus("b", 1, "2M", 1, "t", "done", 3, study_name="b"),
            ],
            workers=1,
        )
    )
    assert state.trials_of("a") == [] and state.best_trial("a") is None
    assert "a" not in state.pinned and state.focus_trial("a") is None
    assert state.best_trial("b") is not None


def test_running_trials_of_fused_groups_are_explained() -> None:
    """`workers 2  running 8` said nothing of fused groups: 2 workers, groups of 4."""
    from hpotui.widgets.status_bar import fused_groups

    state = CampaignState()
    for n in range(8):
        state.apply(
            TrialStarted(
                experiment="a",
                trial=n,
                params={},
                architecture={},
                n_params=1,
                worker=f"w{n // 4}",
                host="h",
            )
        )
    assert state.running_groups() == (2, [4, 4])
    assert fused_groups(state) == " (2 workers, groups of 4)"
    assert fused_groups(state, short=True) == " (groups of 4)"
    state.apply(TrialFinished("a", 7, "complete", 0.6, 1.0, "w1", "h"))
    assert fused_groups(state) == " (2 workers, groups of up to 4)"
    solo = CampaignState()  # one trial per worker: nothing to explain
    solo.apply(
        TrialStarted(
            experiment="a", trial=0, params={}, architecture={}, n_params=1, worker="w0", host="h"
        )
    )
    assert fused_groups(solo) == ""
