"""The stored trials as the engine sends them on start/attach (`experiment_trials`):
every trial that ran, in its stored state, with its loss curve; nothing that never ran."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from engine import protocol as p
from engine.storage.queue import T_COUNTED, T_HOST, T_INTERRUPTED, T_REASON, T_SURPLUS, T_WORKER
from engine.storage.recovery import HOST
from engine.storage.trial_records import TRAIN_LOSSES, trial_record


def _trial(state: TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=state,
        value=0.6 if state == TrialState.COMPLETE else None,
        params={"lr": 0.01},
        distributions={"lr": FloatDistribution(1e-3, 1e-1, log=True)},
        user_attrs={T_WORKER: "w1", T_HOST: HOST, **attrs},
        intermediate_values={1: 0.7, 2: 0.65},
    )


def test_each_stored_state_is_sent_as_stored(tmp_path: Path) -> None:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.journal"))
    )
    study = optuna.create_study(storage=storage, study_name="c.a")
    arch = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32}
    trials = [
        _trial(
            TrialState.COMPLETE,
            architecture=arch,
            n_params=1234,
            metrics={"roc_auc": 0.7},
            **{TRAIN_LOSSES: [[1, 0.8], [2, 0.75]]},
        ),
        _trial(TrialState.FAIL, **{T_COUNTED: True, T_REASON: "OOM"}),
        _trial(TrialState.FAIL, **{T_INTERRUPTED: "engine gone"}),
        _trial(TrialState.FAIL, **{T_SURPLUS: True}),
        _trial(TrialState.PRUNED, **{T_HOST: "machine-b"}),
    ]
    for t in trials:
        study.add_trial(t)
    study.enqueue_trial({"lr": 0.02})  # WAITING: never ran
    stored = storage.get_all_trials(study._study_id)
    records = [trial_record(t) for t in stored]
    complete, failed, interrupted, surplus, pruned, waiting = records
    assert surplus is None and waiting is None
    assert complete is not None and failed is not None and interrupted is not None
    assert pruned is not None
    assert (complete.state, complete.value, complete.n_params) == ("complete", 0.6, 1234)
    assert complete.architecture == arch and complete.metrics == {"roc_auc": 0.7}
    assert complete.curve == [[1.0, 0.8, 0.7], [2.0, 0.75, 0.65]]
    assert complete.worker == "w1"  # this machine's worker, as its own events name it
    assert (failed.state, failed.reason) == ("failed", "OOM")
    assert (interrupted.state, interrupted.reason) == ("interrupted", "engine gone")
    assert pruned.state == "pruned" and pruned.value is None
    assert pruned.worker == "w1@machine-b"  # another machine's, as TrialWatcher names it
    assert pruned.curve == [[1.0, None, 0.7], [2.0, None, 0.65]]  # no train loss stored
    event = p.ExperimentTrials(experiment="a", study_name="c.a", trials=[complete, pruned])
    assert p.decode_event(p.encode(event)) == event


def test_a_running_trial_is_sent_running(tmp_path: Path) -> None:
    study = optuna.create_study()
    trial = study.ask()
    trial.report(0.7, 1)
    record = trial_record(study.trials[0])
    assert record is not None
    assert record.state == "running" and record.curve == [[1.0, None, 0.7]]
    assert record.started_ts is not None and record.duration_s is None
