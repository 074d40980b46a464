"""Dead workers' trials: failed through Optuna's heartbeat, re-enqueued exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from engine.errors import UserError
from engine.storage.backend import open_storage
from engine.storage.queue import (
    T_COUNTED,
    T_HOST,
    T_INTERRUPTED,
    T_RETRY_OF,
    T_WORKER,
    CampaignQueue,
)
from engine.worker.heartbeat import (
    HeartbeatSettings,
    Reaper,
    record_settings,
    stored_settings,
    use_campaign_heartbeat,
)
from tests.fleet.campaignhelp import make_campaign

# study.ask on a storage with a heartbeat: what hpotui's workers do, on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")


def test_settings_are_checked() -> None:
    assert HeartbeatSettings.of(None) == HeartbeatSettings(60, 180)
    assert HeartbeatSettings.of(2) == HeartbeatSettings(2, 6)
    with pytest.raises(UserError, match="--grace: grace period 3 s is under two"):
        HeartbeatSettings.of(2, 3)
    with pytest.raises(UserError, match="--heartbeat"):
        HeartbeatSettings.of(0)


def test_the_first_settings_of_a_campaign_stay(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    queue = CampaignQueue(storage, "dist")
    assert stored_settings(storage, queue) is None
    assert record_settings(storage, queue, HeartbeatSettings(1, 3)) == HeartbeatSettings(1, 3)
    assert record_settings(storage, queue, HeartbeatSettings(60, 180)) == HeartbeatSettings(1, 3)
    other = open_storage(f"sqlite:///{tmp_path / 'c.db'}")  # another machine, defaults
    assert use_campaign_heartbeat(other, CampaignQueue(other, "dist")) == HeartbeatSettings(1, 3)
    assert (other.heartbeat_interval, other.grace_period) == (1, 3)  # type: ignore[attr-defined]
    journal = open_storage(str(tmp_path / "j.journal"))
    assert use_campaign_heartbeat(journal, CampaignQueue(journal, "dist")) is None


def test_a_stale_trial_is_failed_and_re_enqueued_once(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=1, grace_period=1)
    queue = make_campaign(storage)
    entry = queue.entry("1K_h1")
    study = optuna.load_study(study_name=entry.study_name, storage=storage)
    space = {"x": optuna.distributions.FloatDistribution(0, 1)}
    dead = study.ask(space)
    dead.set_user_attr(T_HOST, "far")
    dead.set_user_attr(T_WORKER, "far/w2")
    storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]
    alive = study.ask(space)
    reapers = [Reaper(storage, queue), Reaper(storage, queue)]
    assert reapers[0].reap() == []  # fresh heartbeat
    time.sleep(2.2)  # SQLite's clock has whole seconds
    storage.record_heartbeat(alive._trial_id)  # type: ignore[attr-defined]
    lines = reapers[0].reap() + reapers[1].reap()
    assert lines == [
        f"1K_h1 trial {dead.number}: worker far/w2 on far stopped beating "
        "(no heartbeat for 1 s); queued again"
    ]
    trials = {t.number: t for t in study.get_trials()}
    assert trials[dead.number].state == TrialState.FAIL
    assert "stopped beating" in trials[dead.number].user_attrs[T_INTERRUPTED]
    assert trials[alive.number].state == TrialState.RUNNING
    (retry,) = [t for t in trials.values() if t.user_attrs.get(T_RETRY_OF) == dead.number]
    assert (
        retry.state == TrialState.WAITING
        and retry.params == {}
        and retry.system_attrs["fixed_params"] == dead.params
    )
    # later passes find nothing: one retry, whichever reaper runs
    assert reapers[1].reap() == [] and reapers[0].requeue_orphans() == []
    assert reapers[0].requeue_orphans() == []


def test_an_orphaned_interrupted_trial_gets_its_retry_on_the_second_look(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=60)
    queue = make_campaign(storage)
    study = optuna.load_study(study_name=queue.entry("1K_h2").study_name, storage=storage)
    failed = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(failed, state=TrialState.FAIL)  # failed by a tool that enqueued nothing
    counted = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    counted.set_user_attr(T_COUNTED, True)  # a genuine failure: never retried
    study.tell(counted, state=TrialState.FAIL)
    reaper = Reaper(storage, queue)
    assert reaper.requeue_orphans() == []
    assert reaper.requeue_orphans() == [f"1K_h2 trial {failed.number}: interrupted; queued again"]
    assert reaper.requeue_orphans() == []
    retries = [t for t in study.get_trials() if t.user_attrs.get(T_RETRY_OF) is not None]
    assert [t.user_attrs[T_RETRY_OF] for t in retries] == [failed.number]


def test_a_check_that_waited_out_an_outage_judges_no_one(tmp_path: Path) -> None:
    """When the database goes away while a reaper is looking, every heartbeat is stale by
    the time it answers, the live workers' too: that answer fails no trial, neither the
    node's reaper nor the engine's recovery, until a grace period has passed."""
    from engine.storage.outage import OutageGuard, guard_storage
    from engine.storage.recovery import recover

    class FakeClock:
        now = 1000.0

        def __call__(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.now += seconds

    clock = FakeClock()
    raw = open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=1, grace_period=1)
    storage = guard_storage(raw, OutageGuard(60, clock=clock, sleep=clock.sleep))
    queue = make_campaign(storage)
    study = optuna.load_study(study_name=queue.entry("1K_h1").study_name, storage=storage)
    live = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    live.set_user_attr(T_HOST, "far")  # another machine's worker: its heartbeat decides
    live.set_user_attr(T_WORKER, "far/w1")
    storage.record_heartbeat(live._trial_id)  # type: ignore[attr-defined]
    time.sleep(2.2)  # SQLite's clock has whole seconds: the heartbeat is now stale

    query = raw._get_stale_trial_ids  # type: ignore[attr-defined]
    outage = {"calls": 0}

    def away_once(study_id: int) -> list[int]:
        outage["calls"] += 1
        if outage["calls"] == 1:
            raise ConnectionResetError("server closed the connection")
        return list(query(study_id))

    raw._get_stale_trial_ids = away_once  # type: ignore[attr-defined]
    assert Reaper(storage, queue).reap() == []  # the query waited out an outage
    assert outage["calls"] == 2
    assert recover(queue, ask_lock=None) == 0
    assert storage.get_trial(live._trial_id).state == TrialState.RUNNING
    clock.now += 1 + 5 + 0.1  # the grace plus the longest retry pause: judged again
    assert Reaper(storage, queue).reap() == [
        f"1K_h1 trial {live.number}: worker far/w1 on far stopped beating "
        "(no heartbeat for 1 s); queued again"
    ]
