"""engine.storage.outage: what an outage is, and how it is waited out.

The rules are checked with a fake clock (no sleeping) and real exception chains as
Optuna's RDBStorage raises them; tests/fleet/test_outage_campaign.py stops a real server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy.exc
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.trial import TrialState

from engine import protocol as p
from engine.storage.outage import (
    GuardedStorage,
    OutageGuard,
    OutageStatus,
    StorageUnreachable,
    is_outage,
    report_outages,
)


def _as_optuna_raises(inner: BaseException) -> StorageInternalError:
    """The chain Optuna's RDBStorage raises: its misleading text, the real cause inside."""
    try:
        try:
            raise inner
        except sqlalchemy.exc.SQLAlchemyError as e:
            raise StorageInternalError("invalid data in the commit, e.g. max length") from e
    except StorageInternalError as outer:
        return outer


def _operational(text: str) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(text))


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _flaky(failures: int, error: Callable[[], BaseException]) -> Callable[[], str]:
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise error()
        return "ok"

    return call


def test_connection_errors_are_outages_and_data_errors_are_not() -> None:
    refused = _operational("connection to server at 10.0.0.5 failed: Connection refused")
    assert is_outage(_as_optuna_raises(refused))
    assert is_outage(sqlalchemy.exc.InterfaceError("x", {}, Exception("connection closed")))
    assert is_outage(ConnectionResetError())
    integrity = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    data = sqlalchemy.exc.DataError("INSERT", {}, Exception("value too long"))
    assert not is_outage(_as_optuna_raises(data))
    assert not is_outage(integrity)
    assert not is_outage(KeyError("no study"))
    assert not is_outage(UpdateFinishedTrialError("trial is finished"))


def test_an_outage_is_waited_out_with_backoff_and_reported() -> None:
    fake = FakeTime()
    told: list[OutageStatus] = []
    guard = OutageGuard(60, on_change=told.append, clock=fake.clock, sleep=fake.sleep)
    call = _flaky(6, lambda: _as_optuna_raises(_operational("server closed the connection")))
    assert guard.call(call) == "ok"
    assert fake.slept == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]  # backoff, capped
    # failures at 0, 0.5, 1.5, 3.5, 7.5 and 12.5 s: told at the start, 10 s on, and the end
    assert [s.reachable for s in told] == [False, False, True]
    assert told[1].waited_s == pytest.approx(12.5)
    assert told[0].error == "server closed the connection" and told[0].waited_s == 0
    assert told[-1].waited_s == pytest.approx(17.5)
    assert guard.unreachable_for is None and guard.outages == 1
    assert guard.quiet_after_outage(6) and not guard.quiet_after_outage(0)
    fake.now += 6
    assert not guard.quiet_after_outage(6)


def test_past_the_patience_one_line_that_says_how_to_resume() -> None:
    fake = FakeTime()
    guard = OutageGuard(30, label="postgresql://bob:***@db/hpo", clock=fake.clock, sleep=fake.sleep)
    refused = _operational("connection failed: Connection refused\n\tIs the server running?")
    with pytest.raises(StorageUnreachable) as caught:
        guard.call(_flaky(10**6, lambda: _as_optuna_raises(refused)))
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("postgresql://bob:***@db/hpo unreachable for 30s")
    assert "Connection refused" in text and "run the same command again to resume" in text
    assert fake.now - 1000.0 == pytest.approx(30.0)  # never slept past the patience


def test_data_errors_are_raised_at_once() -> None:
    fake = FakeTime()
    guard = OutageGuard(60, clock=fake.clock, sleep=fake.sleep)
    data = sqlalchemy.exc.DataError("INSERT", {}, Exception("value too long"))
    with pytest.raises(StorageInternalError):
        guard.call(_flaky(1, lambda: _as_optuna_raises(data)))
    assert fake.slept == [] and guard.outages == 0


def test_a_stop_request_ends_the_wait() -> None:
    fake = FakeTime()
    stop = {"now": False}

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        stop["now"] = True

    guard = OutageGuard(300, give_up=lambda: stop["now"], clock=fake.clock, sleep=sleep)
    with pytest.raises(StorageUnreachable):
        guard.call(_flaky(10**6, lambda: ConnectionRefusedError("refused")))
    assert fake.slept == [0.5]


class _Inner:
    """The few RDBStorage methods the retried state change uses."""

    def __init__(self) -> None:
        self.state = TrialState.RUNNING
        self.calls = 0

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any) -> bool:
        self.calls += 1
        if self.calls == 1:  # committed, but the answer was lost with the connection
            self.state = state
            raise _as_optuna_raises(_operational("server closed the connection unexpectedly"))
        if self.state.is_finished():
            raise UpdateFinishedTrialError("already finished")
        self.state = state
        return True

    def get_trial(self, trial_id: int) -> Any:
        return type("T", (), {"state": self.state})()


def test_a_retried_state_change_that_had_committed_succeeds() -> None:
    fake = FakeTime()
    inner = _Inner()
    storage = GuardedStorage(inner, OutageGuard(60, clock=fake.clock, sleep=fake.sleep))  # type: ignore[arg-type]
    assert storage.set_trial_state_values(7, TrialState.COMPLETE, [0.5]) is True
    assert inner.calls == 2


def test_outage_reports_become_protocol_events() -> None:
    fake = FakeTime()
    inner = _Inner()
    storage = GuardedStorage(inner, OutageGuard(60, clock=fake.clock, sleep=fake.sleep))  # type: ignore[arg-type]
    events: list[p.Event] = []
    report_outages(storage, events.append, "w2")
    storage.set_trial_state_values(7, TrialState.COMPLETE, [0.5])
    assert [type(e) for e in events] == [p.StorageOutage, p.StorageOutage]
    lost, back = events
    assert isinstance(lost, p.StorageOutage) and isinstance(back, p.StorageOutage)
    assert (lost.reachable, lost.source, lost.patience_s) == (False, "w2", 60)
    assert (back.reachable, back.waited_s) == (True, 0.5)
    assert p.decode_event(p.encode(lost)) == lost


def test_a_pidless_running_trial_on_a_database_is_dead_after_the_patience(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial created just before an outage, whose worker then gave up on the storage,
    has no pid and no heartbeat: recovery re-runs it once no live worker can still be
    in that window (patience + margin), never before."""
    import optuna

    from engine.storage import recovery
    from engine.storage.backend import open_storage
    from engine.storage.outage import guard_storage
    from engine.storage.queue import T_INTERRUPTED, T_RETRY_OF
    from tests.fleet.campaignhelp import make_campaign

    raw = open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=None)
    storage = guard_storage(raw, OutageGuard(0.5))
    queue = make_campaign(storage)
    entry = queue.entry("1K_h1")
    study = optuna.load_study(study_name=entry.study_name, storage=storage)
    orphan = study.ask()  # no pid, no host, no heartbeat: its worker gave up right here
    assert recovery.recover(queue, ask_lock=None) == 0  # younger than patience + 60 s
    monkeypatch.setenv(recovery.PIDLESS_MARGIN_ENV, "0")  # dead once past the patience
    deadline = time.monotonic() + 60  # a safety net: the patience is 0.5 s
    while (found := recovery.recover(queue, ask_lock=None)) == 0:
        assert time.monotonic() < deadline, "the pid-less trial was never taken for dead"
        time.sleep(0.05)
    assert found == 1
    trials = queue.entry("1K_h1").trials
    dead = next(t for t in trials if t.number == orphan.number)
    assert dead.state == TrialState.FAIL and dead.user_attrs[T_INTERRUPTED] == "worker died"
    assert [t.state for t in trials if t.user_attrs.get(T_RETRY_OF) == orphan.number] == [
        TrialState.WAITING
    ]


def test_the_pidless_margin_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.errors import UserError
    from engine.storage.recovery import PIDLESS_MARGIN_ENV, pidless_margin_s

    monkeypatch.delenv(PIDLESS_MARGIN_ENV, raising=False)
    assert pidless_margin_s() == 60.0  # the default users get
    for text, seconds in (("5", 5.0), ("0.5", 0.5), ("90s", 90.0), ("2m", 120.0)):
        monkeypatch.setenv(PIDLESS_MARGIN_ENV, text)
        assert pidless_margin_s() == seconds
    monkeypatch.setenv(PIDLESS_MARGIN_ENV, "soon")
    with pytest.raises(UserError) as caught:
        pidless_margin_s()
    assert str(caught.value).startswith("$HPOTUI_PIDLESS_MARGIN: expected seconds")


def test_heartbeats_are_not_trusted_until_a_grace_after_an_outage(tmp_path: Any) -> None:
    """Reapers (engine.worker.heartbeat, engine.storage.recovery) ask this before judging anyone."""
    from engine.storage.backend import open_storage
    from engine.storage.outage import guard_storage, heartbeats_trusted

    fake = FakeTime()
    raw = open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=1, grace_period=2)
    storage = guard_storage(raw, OutageGuard(60, clock=fake.clock, sleep=fake.sleep))
    assert heartbeats_trusted(storage)
    storage.guard.call(_flaky(2, lambda: ConnectionResetError("reset")))  # type: ignore[attr-defined]
    assert not heartbeats_trusted(storage)
    fake.now += 2 + 5 - 0.1  # grace + the longest retry pause a heartbeat may still sleep
    assert not heartbeats_trusted(storage)
    fake.now += 0.2
    assert heartbeats_trusted(storage)
