"""Trials run by other machines become events, with their host, exactly once."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from engine import protocol as p
from engine.fleet.hosts import TrialWatcher
from engine.storage.backend import open_storage
from engine.storage.queue import T_HOST, T_SURPLUS, T_WORKER, CampaignQueue
from engine.storage.recovery import host_name
from tests.fleet.campaignhelp import make_campaign


def _queue(tmp_path: Path) -> CampaignQueue:
    return make_campaign(open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=None))


def _ask(
    queue: CampaignQueue, experiment: str, host: str
) -> tuple[optuna.Study, optuna.trial.Trial]:
    entry = queue.entry(experiment)
    study = optuna.load_study(study_name=entry.study_name, storage=queue.storage)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr(T_HOST, host)
    trial.set_user_attr(T_WORKER, "w1")
    return study, trial


def test_host_name_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOTUI_HOST", "rack-7")
    assert host_name() == "rack-7"
    monkeypatch.setenv("HPOTUI_HOST", " ")
    assert host_name() not in ("", " ")


def test_foreign_trials_are_reported_once_with_their_host(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    old_study, old = _ask(queue, "1K_h1", "far")
    old_study.tell(old, 0.9)  # finished before the first poll: already known
    watcher = TrialWatcher(queue, is_local=lambda t: t.user_attrs.get(T_HOST) == "here")
    assert watcher.poll() == []

    study, far = _ask(queue, "1K_h2", "far")
    _, near = _ask(queue, "1K_h2", "here")
    assert watcher.poll(force=True) == []  # no architecture yet: not started for a person
    far.set_user_attr("architecture", {"d_model": 8, "n_layers": 1, "n_heads": 2, "d_ff": 16})
    far.set_user_attr("n_params", 1321)
    (started,) = watcher.poll(force=True)
    assert isinstance(started, p.TrialStarted)
    assert (started.experiment, started.trial, started.host, started.worker) == (
        "1K_h2",
        far.number,
        "far",
        "w1@far",
    )
    assert started.n_params == 1321 and started.architecture["d_model"] == 8
    assert watcher.poll() == []  # interval not over
    assert watcher.poll(force=True) == []  # nothing new

    far.set_user_attr("metrics", {"auc": 0.61})
    study.tell(far, 0.5)
    study.tell(near, 0.4)
    (finished,) = watcher.poll(force=True)
    assert isinstance(finished, p.TrialFinished)
    assert (finished.trial, finished.state, finished.value, finished.host) == (
        far.number,
        "complete",
        0.5,
        "far",
    )
    assert finished.metrics == {"auc": 0.61} and finished.duration_s >= 0
    assert watcher.poll(force=True) == []


def test_started_and_finished_between_polls_and_surplus(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    watcher = TrialWatcher(queue, is_local=lambda t: False)
    watcher.poll()
    study, quick = _ask(queue, "1K_h3", "far")
    study.tell(quick, state=TrialState.PRUNED)
    _, surplus = _ask(queue, "1K_h3", "far")
    surplus.set_user_attr(T_SURPLUS, True)
    study.tell(surplus, state=TrialState.FAIL)
    events = watcher.poll(force=True)
    assert [type(e) for e in events] == [p.TrialStarted, p.TrialFinished]
    assert events[1].state == "pruned" and events[1].value is None  # type: ignore[attr-defined]


def test_note_local_silences_a_trial_whose_event_came_first(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    watcher = TrialWatcher(queue, is_local=lambda t: False)
    watcher.poll()
    study, mine = _ask(queue, "1K_h1", "here")
    watcher.note_local("1K_h1", mine.number)
    study.tell(mine, 0.3)
    assert watcher.poll(force=True) == []


def test_the_final_poll_reports_our_trials_whose_event_never_came(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    watcher = TrialWatcher(queue, is_local=lambda t: t.user_attrs.get(T_HOST) == "here")
    assert watcher.poll() == []
    study, said = _ask(queue, "1K_h1", "here")
    _, lost = _ask(queue, "1K_h1", "here")
    watcher.note_local("1K_h1", said.number)
    watcher.note_local("1K_h1", lost.number)
    study.tell(said, 0.5)
    watcher.note_reported("1K_h1", said.number)  # its worker's event came
    study.tell(lost, 0.7)  # its worker died before saying so
    assert watcher.poll(force=True) == []  # ours: left to our workers while they run
    (finished,) = watcher.poll(final=True)
    assert isinstance(finished, p.TrialFinished)
    assert (finished.trial, finished.state, finished.value) == (lost.number, "complete", 0.7)
    assert watcher.poll(final=True) == []  # once
