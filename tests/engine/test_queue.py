"""The queue in a real journal storage: order, states, counting, re-runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pytest
from enginehelp import FIXTURES
from optuna.trial import TrialState

from engine.campaign.config import load_campaign
from engine.campaign.model import Campaign
from engine.campaign.plan import Plan, plan_experiment
from engine.errors import UserError
from engine.storage.backend import open_storage
from engine.storage.queue import T_COUNTED, T_INTERRUPTED, T_REASON, CampaignQueue


@pytest.fixture
def campaign() -> Campaign:
    return load_campaign(FIXTURES / "micro.toml")


def _queue(workspace: Path, campaign: Campaign) -> tuple[CampaignQueue, Plan]:
    storage = open_storage(str(workspace / "outputs" / "q.journal"))
    queue = CampaignQueue(storage, campaign.name)
    plan = Plan()
    for exp in campaign.experiments:
        plan_experiment(exp, plan)
        queue.ensure(exp, plan.grids[exp.name], plan.space_keys[exp.name], plan.extremes[exp.name])
    return queue, plan


def test_order_and_states_are_shared_through_the_storage(
    workspace: Path, campaign: Campaign
) -> None:
    queue, _ = _queue(workspace, campaign)
    other = CampaignQueue(open_storage(str(workspace / "outputs" / "q.journal")), "micro")
    assert [e.name for e in other.entries()] == ["1.8K_h1", "1.8K_h2"]
    queue.move("1.8K_h2", to=0)
    assert [e.name for e in other.entries()] == ["1.8K_h2", "1.8K_h1"]
    queue.move("1.8K_h2", by=5)  # clamped to the end
    assert [e.name for e in other.entries()] == ["1.8K_h1", "1.8K_h2"]
    queue.pause("1.8K_h1")
    assert other.pick() is not None and other.pick().name == "1.8K_h2"  # type: ignore[union-attr]
    queue.set_paused_all(True)
    assert other.pick() is None
    queue.set_paused_all(False)
    queue.skip("1.8K_h2")
    assert other.pick() is None
    queue.resume("1.8K_h2")  # un-skip: queued again
    assert other.pick().name == "1.8K_h2"  # type: ignore[union-attr]
    with pytest.raises(UserError, match="not paused or skipped"):
        queue.resume("1.8K_h2")  # queued: nothing to resume
    queue.skip("1.8K_h2")
    queue.resume("1.8K_h1")
    assert other.pick().name == "1.8K_h1"  # type: ignore[union-attr]
    with pytest.raises(UserError, match=r"known: 1\.8K_h1, 1\.8K_h2"):
        queue.pause("2B_h9")


def test_forced_extremes_are_enqueued_once_per_study(workspace: Path, campaign: Campaign) -> None:
    queue, plan = _queue(workspace, campaign)
    exp = campaign.experiments[0]
    n_extremes = len(plan.extremes[exp.name])
    assert n_extremes >= 1
    # a restart ensures again: nothing is enqueued twice
    queue.ensure(exp, plan.grids[exp.name], plan.space_keys[exp.name], plan.extremes[exp.name])
    waiting = [t for t in queue.entry(exp.name).trials if t.state == TrialState.WAITING]
    assert len(waiting) == n_extremes


def test_a_changed_value_space_is_refused(workspace: Path, campaign: Campaign) -> None:
    queue, plan = _queue(workspace, campaign)
    exp = campaign.experiments[0]
    space = tuple(
        dataclasses.replace(s, choices=(256, 512)) if s.name == "batch_size" else s
        for s in exp.search_space
    )
    changed = dataclasses.replace(exp, search_space=space)
    plan_experiment(changed, plan)
    with pytest.raises(UserError, match=r"value space|search space"):
        queue.ensure(
            changed, plan.grids[exp.name], plan.space_keys[exp.name], plan.extremes[exp.name]
        )
    # a change that keeps the value space (more trials) is taken
    more = dataclasses.replace(exp, n_trials=9)
    plan_experiment(more, plan)
    queue.ensure(more, plan.grids[exp.name], plan.space_keys[exp.name], plan.extremes[exp.name])
    assert queue.entry(exp.name).config.n_trials == 9


def _finish(queue: CampaignQueue, name: str, state: TrialState, **attrs: object) -> None:
    entry = queue.entry(name)
    study = optuna.load_study(study_name=entry.study_name, storage=queue.storage)
    trial = study.ask()
    for key, value in attrs.items():
        queue.storage.set_trial_user_attr(trial._trial_id, key, value)
    if state == TrialState.COMPLETE:
        study.tell(trial, 0.5)
    else:
        study.tell(trial, state=state)


def test_counting_done_and_failed(workspace: Path, campaign: Campaign) -> None:
    queue, _ = _queue(workspace, campaign)
    h1, h2 = "1.8K_h1", "1.8K_h2"
    for _ in range(3):
        _finish(queue, h1, TrialState.COMPLETE)
    _finish(queue, h1, TrialState.FAIL, **{T_INTERRUPTED: "worker died"})
    entry = queue.entry(h1)
    assert entry.counts.finished == 3 and entry.counts.interrupted == 1
    assert queue.refresh() == []  # 3 of 4: still queued
    _finish(queue, h1, TrialState.PRUNED)
    (changed, before), *_ = queue.refresh()
    assert (changed.name, before, changed.stored_state) == (h1, "queued", "done")

    for _ in range(3):  # max_consecutive_failures defaults to 3
        _finish(queue, h2, TrialState.FAIL, **{T_COUNTED: True})
    (changed, _), *_ = queue.refresh()
    assert changed.stored_state == "failed" and "consecutive" in changed.reason
    assert queue.all_terminal()


def test_architectures_too_big_for_the_device_do_not_fail_the_experiment(
    workspace: Path, campaign: Campaign
) -> None:
    queue, _ = _queue(workspace, campaign)
    name = "1.8K_h2"
    too_big = {T_COUNTED: True, T_REASON: "TrialDoesNotFit: needs 34 GiB, 17 GiB usable"}
    for _ in range(3):  # as many as max_consecutive_failures
        _finish(queue, name, TrialState.FAIL, **too_big)
    assert queue.entry(name).counts.consecutive_failures == 0
    assert all(c.stored_state != "failed" for c, _ in queue.refresh())
    for _ in range(2):  # real failures still count
        _finish(queue, name, TrialState.FAIL, **{T_COUNTED: True, T_REASON: "ValueError: x"})
    assert queue.entry(name).counts.consecutive_failures == 2


def test_rerun_archives_the_old_study_and_keeps_the_position(
    workspace: Path, campaign: Campaign
) -> None:
    queue, plan = _queue(workspace, campaign)
    _finish(queue, "1.8K_h1", TrialState.COMPLETE)
    old = queue.entry("1.8K_h1").study_name
    fresh = queue.rerun("1.8K_h1", plan.extremes["1.8K_h1"])
    assert fresh.study_name == f"{old}.r2" and fresh.position == 0
    assert fresh.counts.complete == 0
    names = [s.study_name for s in queue.storage.get_all_studies()]
    assert old in names  # archived, not deleted
    assert len(optuna.load_study(study_name=old, storage=queue.storage).trials) > 0
    assert queue.rerun("1.8K_h1", []).study_name == f"{old}.r3"


def test_a_done_experiment_keeps_no_waiting_retry(workspace: Path, campaign: Campaign) -> None:
    """A retry enqueued after the last slot was taken is closed, never left WAITING."""
    queue, _ = _queue(workspace, campaign)
    entry = queue.entry("1.8K_h1")
    study = optuna.load_study(study_name=entry.study_name, storage=queue.storage)
    for t in study.get_trials(states=(TrialState.WAITING,)):  # forced extremes: not here
        queue.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    for i in range(entry.config.n_trials):
        trial = study.ask()
        study.tell(trial, 0.5 + i)
    study.enqueue_trial({}, user_attrs={"hpotui.retry_of": 0})
    queue.refresh()
    done = queue.entry("1.8K_h1")
    assert done.stored_state == "done"
    assert done.counts.finished == done.config.n_trials  # never short, never over
    assert not [t for t in done.trials if t.state == TrialState.WAITING]
    closed = [t for t in done.trials if t.user_attrs.get("hpotui.retry_of") == 0]
    assert len(closed) == 1 and closed[0].user_attrs["hpotui.surplus"]
    # a retry enqueued after the experiment became done (a late reaper elsewhere) too
    study.enqueue_trial({}, user_attrs={"hpotui.retry_of": 1})
    assert queue.refresh() == []  # no state change
    late = queue.entry("1.8K_h1")
    assert late.stored_state == "done" and late.counts.finished == late.config.n_trials
    assert not [t for t in late.trials if t.state == TrialState.WAITING]
