"""The worker loop in-process against a real journal storage and real (tiny) training."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from enginehelp import FIXTURES
from optuna.trial import TrialState

from engine import protocol as p
from engine.campaign.config import load_campaign
from engine.campaign.model import ExperimentConfig
from engine.campaign.plan import Plan, plan_experiment
from engine.dataset.build import ensure_dataset
from engine.storage.backend import open_storage
from engine.storage.queue import (
    T_COUNTED,
    T_INTERRUPTED,
    T_REASON,
    T_RETRY_OF,
    T_SURPLUS,
    CampaignQueue,
)
from engine.storage.recovery import enqueue_retry
from engine.worker.trial_loop import Flags, Worker

pytestmark = pytest.mark.slow


def _setup(workspace: Path, *exps: ExperimentConfig) -> CampaignQueue:
    ensure_dataset("SP500", "a25", 1)
    queue = CampaignQueue(open_storage(str(workspace / "outputs" / "w.journal")), "micro")
    plan = Plan()
    for exp in exps:
        plan_experiment(exp, plan)
        queue.ensure(exp, plan.grids[exp.name], plan.space_keys[exp.name], plan.extremes[exp.name])
    return queue


def _worker(queue: CampaignQueue, events: list[p.Event], name: str = "w1", **kw: object) -> Worker:
    return Worker(queue.storage, "micro", worker_id=name, emit=events.append, **kw)  # type: ignore[arg-type]


def test_two_workers_run_exactly_n_trials(workspace: Path) -> None:
    exp = load_campaign(FIXTURES / "micro.toml").experiments[0]
    queue = _setup(workspace, exp)
    events: list[p.Event] = []
    workers = [_worker(queue, events, f"w{i}", parallel=True, salt=i) for i in (1, 2)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    entry = queue.entry(exp.name)
    assert entry.stored_state == "done"
    assert entry.counts.complete + entry.counts.pruned == exp.n_trials
    extras = [t for t in entry.trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs.get(T_SURPLUS) for t in extras)
    started = [e for e in events if isinstance(e, p.TrialStarted)]
    first = min(started, key=lambda e: e.trial)
    assert first.trial == 0 and first.forced_extreme  # enqueued extremes come first
    assert {e.worker for e in started} <= {"w1", "w2"}
    finished = [e for e in events if isinstance(e, p.TrialFinished)]
    assert all(e.value is not None and e.architecture for e in finished)


def test_failing_trials_are_recorded_and_the_experiment_fails_after_the_limit(
    workspace: Path,
) -> None:
    exp = load_campaign(FIXTURES / "micro.toml").experiments[0]
    split = dataclasses.replace(exp.data.split, min_val_windows=10**6)
    broken = dataclasses.replace(exp, data=dataclasses.replace(exp.data, split=split))
    queue = _setup(workspace, broken)
    events: list[p.Event] = []
    worker = _worker(queue, events)
    for _ in range(broken.max_consecutive_failures):
        assert worker.run_one()
    assert not worker.run_one()  # the experiment is failed: nothing to pick
    entry = queue.entry(exp.name)
    assert entry.stored_state == "failed"
    failed = [t for t in entry.trials if t.state == TrialState.FAIL]
    assert len(failed) == 3 and all(t.user_attrs[T_COUNTED] for t in failed)
    assert all("validation" in t.user_attrs[T_REASON].lower() for t in failed)
    assert [e.state for e in events if isinstance(e, p.TrialFinished)] == ["failed"] * 3


def test_stop_now_interrupts_and_the_trial_is_rerun_once(workspace: Path) -> None:
    exp = load_campaign(FIXTURES / "micro.toml").experiments[0]
    queue = _setup(workspace, exp)
    events: list[p.Event] = []
    worker = _worker(queue, events, flags=Flags(interrupt=True))
    assert worker.run_one()
    (finished,) = [e for e in events if isinstance(e, p.TrialFinished)]
    assert finished.state == "interrupted"
    entry = queue.entry(exp.name)
    (stopped,) = [t for t in entry.trials if t.user_attrs.get(T_INTERRUPTED)]
    assert entry.counts.finished == 0  # not counted toward n_trials
    (retry,) = [t for t in entry.trials if t.user_attrs.get(T_RETRY_OF) == stopped.number]
    assert retry.state == TrialState.WAITING
    assert not enqueue_retry(queue.storage, entry.study_name, stopped)  # once only
    worker.flags.interrupt = False
    assert worker.run_one()
    rerun = queue.storage.get_trial(retry._trial_id)
    assert rerun.state == TrialState.COMPLETE and rerun.params == stopped.params


def test_trials_record_both_selection_figures_and_the_normalization(workspace: Path) -> None:
    base = load_campaign(FIXTURES / "micro.toml").experiments[0]
    data = dataclasses.replace(base.data, normalization="revin")
    exp = dataclasses.replace(base, objective="val_auc", data=data, n_trials=2)
    queue = _setup(workspace, exp)
    _worker(queue, []).run()
    complete = [t for t in queue.entry(exp.name).trials if t.state == TrialState.COMPLETE]
    assert complete
    for trial in complete:
        attrs = trial.user_attrs
        assert attrs["objective"] == "val_auc" and attrs["normalization"] == "revin"
        assert trial.value == pytest.approx(1.0 - attrs["val_auc"])
        assert attrs["val_bce"] == attrs["metrics"]["bce"] != trial.value


def test_a_study_refuses_a_changed_objective(workspace: Path) -> None:
    exp = load_campaign(FIXTURES / "micro.toml").experiments[0]
    queue = _setup(workspace, exp)
    changed = dataclasses.replace(exp, objective="val_auc")
    plan = Plan()
    plan_experiment(changed, plan)
    with pytest.raises(Exception, match="objective differs"):
        queue.ensure(changed, plan.grids[exp.name], plan.space_keys[exp.name], [])


@pytest.mark.parametrize("fuse", [1, 2])
def test_dropout_sites_reach_training_from_the_config(
    fuse: int, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dropout_sites` in the TOML builds the models of every trial (solo and fused) and is
    stored with each trial, with the run choice its training used."""
    from engine.model.patchtst import PatchTST

    text = (FIXTURES / "micro.toml").read_text()
    text = text.replace('precision = "fp32"', 'precision = "fp32"\ndropout_sites = "reference"')
    text = text.replace("n_trials = 4", f"n_trials = 4\nfuse = {fuse}")
    text = text.replace("forced_extremes = true", "forced_extremes = false")  # one group
    path = workspace / "sites.toml"
    path.write_text(text)
    exp = load_campaign(path).experiments[0]
    built: list[tuple[str, ...]] = []
    init = PatchTST.__init__

    def spy(self: PatchTST, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        built.append(self.dropout_sites)

    monkeypatch.setattr(PatchTST, "__init__", spy)
    queue = _setup(workspace, exp)
    _worker(queue, []).run()
    reference = ("embedding", "attention", "ffn_inner", "ffn_out")
    assert len(built) >= 4 and set(built) == {reference}
    complete = [t for t in queue.entry(exp.name).trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4
    for trial in complete:
        assert trial.user_attrs["dropout_sites"] == list(reference)
        choice = trial.user_attrs["run_choice"]
        assert choice["precision"] == "fp32" and choice["source"] == "rule"  # tests: rules
        assert trial.user_attrs.get("fused_k", 1) == fuse
