"""Fused groups in the worker loop: real journal storage, real (tiny) training.

Each member of a group is an ordinary Optuna trial (own params, epochs, value); members
share the architecture and shape knobs; extremes join groups of their architecture;
n_trials holds; an interrupt re-enqueues every member; `fuse = 1` never groups.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from enginehelp import FIXTURES
from optuna.trial import TrialState

from engine import protocol as p
from engine.campaign.config import load_campaign
from engine.campaign.model import ExperimentConfig
from engine.campaign.plan import Plan, plan_experiment
from engine.campaign.search import ARCH_PARAM
from engine.dataset.build import ensure_dataset
from engine.storage.backend import open_storage
from engine.storage.queue import T_EXTREME, T_INTERRUPTED, T_RETRY_OF, CampaignQueue
from engine.worker.trial_loop import Flags, Worker

pytestmark = pytest.mark.slow


def _setup(workspace: Path, exp: ExperimentConfig) -> CampaignQueue:
    ensure_dataset("SP500", "a25", 1)
    queue = CampaignQueue(open_storage(str(workspace / "outputs" / "w.journal")), "micro")
    plan = Plan()
    plan_experiment(exp, plan)
    queue.ensure(exp, plan.grids[exp.name], plan.space_keys[exp.name], plan.extremes[exp.name])
    return queue


def _experiment(fuse: int | str, n_trials: int = 6, extremes: bool = False) -> ExperimentConfig:
    exp = load_campaign(FIXTURES / "micro.toml").experiments[0]
    # two epochs, so members report several intermediate values each
    fixed = {**exp.fixed_params, "epochs": 2, "patience": 2}
    return dataclasses.replace(
        exp, fuse=fuse, n_trials=n_trials, forced_extremes=extremes, fixed_params=fixed
    )


def _worker(queue: CampaignQueue, events: list[p.Event], **kw: object) -> Worker:
    return Worker(queue.storage, "micro", worker_id="w1", emit=events.append, **kw)  # type: ignore[arg-type]


def test_a_group_is_k_ordinary_trials_of_one_shape(workspace: Path) -> None:
    exp = _experiment(fuse=3)
    queue = _setup(workspace, exp)
    events: list[p.Event] = []
    worker = _worker(queue, events)
    assert worker.run_one()
    trials = queue.entry(exp.name).trials
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["fused_k"] for t in trials} == {3}
    assert {t.user_attrs["fused_group"] for t in trials} == {trials[0].number}
    shape = {(t.params[ARCH_PARAM], t.params["batch_size"]) for t in trials}
    assert len(shape) == 1  # architecture and batch size fixed for the group
    assert len({t.params["learning_rate"] for t in trials}) == 3  # the rest sampled
    assert len({t.value for t in trials}) == 3
    for t in trials:  # each reports its own epochs as its own trial
        assert sorted(t.intermediate_values) == [1, 2]
        assert t.user_attrs["epochs_run"] == 2
        # stored as a solo trial's: its loss curve after a restart, both selection figures
        assert [epoch for epoch, _ in t.user_attrs["train_losses"]] == [1, 2]
        assert t.user_attrs["val_bce"] == t.user_attrs["metrics"]["bce"]
        assert 0.0 <= t.user_attrs["val_auc"] <= 1.0
        assert t.user_attrs["objective"] == "val_bce"
    finished = [e for e in events if isinstance(e, p.TrialFinished)]
    assert sorted(e.trial for e in finished) == [t.number for t in trials]
    ended = [e for e in events if isinstance(e, p.EpochEnded)]
    assert len(ended) == 6
    # the next group takes the rest: n_trials holds
    assert worker.run_one()
    entry = queue.entry(exp.name)
    assert entry.counts.complete == 6
    assert not worker.run_one()


def test_an_auc_objective_trains_solo(workspace: Path) -> None:
    """Groups select epochs by validation BCE: an experiment selecting by AUC runs solo."""
    exp = dataclasses.replace(_experiment(fuse=3), objective="val_auc")
    queue = _setup(workspace, exp)
    worker = _worker(queue, [])
    assert worker.run_one()
    [trial] = queue.entry(exp.name).trials
    assert "fused_k" not in trial.user_attrs
    assert trial.value == pytest.approx(1 - trial.user_attrs["val_auc"])


def test_trials_left_and_half_of_n_trials_cap_the_group(workspace: Path) -> None:
    exp = _experiment(fuse=4, n_trials=7)  # half of 7: groups of at most 3
    queue = _setup(workspace, exp)
    worker = _worker(queue, [])
    while worker.run_one():
        pass
    trials = queue.entry(exp.name).trials
    assert len(trials) == 7 and all(t.state == TrialState.COMPLETE for t in trials)
    sizes = [t.user_attrs.get("fused_k", 1) for t in trials]
    assert sizes == [3, 3, 3, 3, 3, 3, 1]  # the last one is left alone: one-trial path
    assert "fused_k" not in trials[-1].user_attrs


def test_extremes_lead_groups_of_their_architecture(workspace: Path) -> None:
    exp = _experiment(fuse=3, n_trials=6, extremes=True)
    queue = _setup(workspace, exp)
    worker = _worker(queue, [])
    assert worker.run_one()
    trials = queue.entry(exp.name).trials
    running = [t for t in trials if t.state != TrialState.WAITING]
    extreme = running[0]
    assert extreme.user_attrs.get(T_EXTREME) is not None
    group = [t for t in running if t.user_attrs.get("fused_group") == extreme.number]
    assert len(group) >= 1
    assert {t.params[ARCH_PARAM] for t in group} == {extreme.params[ARCH_PARAM]}


def test_interrupt_reenqueues_every_member(workspace: Path) -> None:
    exp = _experiment(fuse=2)
    queue = _setup(workspace, exp)
    events: list[p.Event] = []
    worker = _worker(queue, events, flags=Flags(interrupt=True))
    assert worker.run_one()
    finished = [e for e in events if isinstance(e, p.TrialFinished)]
    assert [e.state for e in finished] == ["interrupted", "interrupted"]
    trials = queue.entry(exp.name).trials
    stopped = [t for t in trials if t.user_attrs.get(T_INTERRUPTED)]
    retries = [t for t in trials if t.user_attrs.get(T_RETRY_OF) is not None]
    assert len(stopped) == 2 and len(retries) == 2
    assert all(t.state == TrialState.WAITING for t in retries)
    # the retries share an architecture: they re-form one group
    worker.flags.interrupt = False
    assert worker.run_one()
    reruns = [queue.storage.get_trial(t._trial_id) for t in retries]
    assert all(t.state == TrialState.COMPLETE for t in reruns)
    assert {t.user_attrs["fused_k"] for t in reruns} == {2}


def test_fuse_1_never_groups(workspace: Path) -> None:
    exp = _experiment(fuse=1)
    queue = _setup(workspace, exp)
    worker = _worker(queue, [])
    assert worker.run_one()
    (trial,) = queue.entry(exp.name).trials
    assert trial.state == TrialState.COMPLETE and "fused_k" not in trial.user_attrs


def test_a_group_whose_data_fails_records_the_failure(workspace: Path) -> None:
    exp = _experiment(fuse=2)
    split = dataclasses.replace(exp.data.split, min_val_windows=10**6)
    broken = dataclasses.replace(exp, data=dataclasses.replace(exp.data, split=split))
    queue = _setup(workspace, broken)
    events: list[p.Event] = []
    worker = _worker(queue, events)
    assert worker.run_one()  # no crash: the leader fails as a one-trial run would
    (trial,) = queue.entry(exp.name).trials
    assert trial.state == TrialState.FAIL
    assert [e.state for e in events if isinstance(e, p.TrialFinished)] == ["failed"]


def test_storage_gone_mid_group_leaves_members_running_never_failed(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database outage past its patience is the machine's fault, not the trials': as
    for a solo trial, the members stay RUNNING (recovery records them interrupted and
    re-enqueues them) and none is failed or counted."""
    import optuna

    from engine.storage.outage import StorageUnreachable

    exp = _experiment(fuse=2)
    queue = _setup(workspace, exp)

    def unreachable(self: object, value: float, step: int) -> None:
        raise StorageUnreachable("database unreachable for 5m")

    monkeypatch.setattr(optuna.trial.Trial, "report", unreachable)
    events: list[p.Event] = []
    with pytest.raises(StorageUnreachable):
        _worker(queue, events).run_one()
    trials = queue.entry(exp.name).trials
    assert len(trials) == 2
    assert all(t.state == TrialState.RUNNING for t in trials)
    assert not any(isinstance(e, p.TrialFinished) for e in events)


def test_member_durations_are_measured_from_their_stored_start(workspace: Path) -> None:
    exp = _experiment(fuse=2)
    queue = _setup(workspace, exp)
    events: list[p.Event] = []
    assert _worker(queue, events).run_one()
    stored = {t.number: t for t in queue.entry(exp.name).trials}
    for event in (e for e in events if isinstance(e, p.TrialFinished)):
        t = stored[event.trial]
        held = (t.datetime_complete - t.datetime_start).total_seconds()
        # the event is emitted just after the tell: never shorter than what is stored
        assert held - 0.05 <= event.duration_s <= held + 30
