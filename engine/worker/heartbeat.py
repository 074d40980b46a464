"""Dead workers on any machine: Optuna's heartbeat, with one setting per campaign.

A worker records a heartbeat for its running trial every `interval_s` seconds (Optuna's
RDB storage heartbeat, see `engine.worker.trial_loop`). A RUNNING trial whose heartbeat is older
than `grace_s` belongs to a dead worker (killed, machine lost, network gone):
`Reaper.reap` records it as interrupted (FAIL, not counted) and enqueues its parameters
again, so it is re-run by whichever worker asks next.

Rules:
- The interval and the grace period are stored once per campaign, in the attributes of
  its meta study, so every machine uses the same numbers: a machine that beats every
  60 s must never be judged with another's 3 s grace. `use_campaign_heartbeat` applies
  them to an opened storage.
- Exactly one process re-enqueues a dead trial: the one whose RUNNING -> FAIL update
  wins (the storage locks the trial's row), so several reapers may run at once.
- Only databases have a heartbeat; on a journal file `Reaper.reap` does nothing (the
  engine recovers its local workers' trials by process id instead).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from engine.errors import UserError
from engine.storage.outage import guarded_call, heartbeats_trusted
from engine.storage.queue import (
    PREFIX,
    T_HOST,
    T_INTERRUPTED,
    T_RETRY_OF,
    T_WORKER,
    CampaignQueue,
    Entry,
)
from engine.storage.recovery import enqueue_retry, needs_retry, stale_trial_ids

S_HEARTBEAT = PREFIX + "heartbeat"
DEFAULT_INTERVAL_S = 60
GRACE_FACTOR = 3  # a worker may miss two beats (a busy machine) before it is judged dead
TERMINAL = ("done", "failed", "skipped")


@dataclass(frozen=True)
class HeartbeatSettings:
    interval_s: int = DEFAULT_INTERVAL_S
    grace_s: int = DEFAULT_INTERVAL_S * GRACE_FACTOR

    @classmethod
    def of(cls, interval_s: int | None, grace_s: int | None = None) -> HeartbeatSettings:
        """Checked settings; the grace period defaults to 3 intervals."""
        interval = DEFAULT_INTERVAL_S if interval_s is None else int(interval_s)
        if interval < 1:
            raise UserError(f"must be at least 1 second, got {interval}", where="--heartbeat")
        grace = interval * GRACE_FACTOR if grace_s is None else int(grace_s)
        if grace < 2 * interval:
            raise UserError(
                f"grace period {grace} s is under two heartbeat intervals ({2 * interval} s): "
                "live workers would be taken for dead",
                where="--grace",
            )
        return cls(interval, grace)

    def to_dict(self) -> dict[str, int]:
        return {"interval_s": self.interval_s, "grace_s": self.grace_s}


def _meta_study_id(storage: BaseStorage, queue: CampaignQueue, *, create: bool) -> int | None:
    try:
        return storage.get_study_id_from_name(queue.meta_name)
    except KeyError:
        if not create:
            return None
        study = optuna.create_study(
            storage=storage, study_name=queue.meta_name, load_if_exists=True
        )
        return int(study._study_id)


def stored_settings(storage: BaseStorage, queue: CampaignQueue) -> HeartbeatSettings | None:
    sid = _meta_study_id(storage, queue, create=False)
    if sid is None:
        return None
    raw = storage.get_study_user_attrs(sid).get(S_HEARTBEAT)
    if not isinstance(raw, dict):
        return None
    return HeartbeatSettings(int(raw["interval_s"]), int(raw["grace_s"]))


def record_settings(
    storage: BaseStorage, queue: CampaignQueue, settings: HeartbeatSettings
) -> HeartbeatSettings:
    """Store `settings` for the campaign unless it has some already; return the ones in force."""
    current = stored_settings(storage, queue)
    if current is not None:
        return current
    sid = _meta_study_id(storage, queue, create=True)
    assert sid is not None
    storage.set_study_user_attr(sid, S_HEARTBEAT, settings.to_dict())
    return settings


def has_heartbeat(storage: BaseStorage) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(storage))


def use_campaign_heartbeat(storage: BaseStorage, queue: CampaignQueue) -> HeartbeatSettings | None:
    """Make `storage` beat and judge with the campaign's settings (None: no heartbeat)."""
    if not has_heartbeat(storage):
        return None
    settings = stored_settings(storage, queue) or HeartbeatSettings()
    rdb: Any = storage
    rdb.heartbeat_interval = settings.interval_s
    rdb.grace_period = settings.grace_s
    return settings


@contextlib.contextmanager
def campaign_lock(storage: BaseStorage, campaign: str) -> Iterator[None]:
    """Hold a lock on `campaign` across machines while creating or repairing it.

    PostgreSQL: a session advisory lock. Other storages: none (SQLite has one writer;
    a journal file is local, where the engine's own lock applies).
    """
    engine = getattr(storage, "engine", None)
    if engine is None or engine.dialect.name != "postgresql":
        yield
        return
    import sqlalchemy

    key = int.from_bytes(
        hashlib.sha256(f"hpotui:{campaign}".encode()).digest()[:8], "big", signed=True
    )

    def lock() -> Any:
        connection = engine.connect()
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            connection.commit()
        except BaseException:
            connection.close()
            raise
        return connection

    connection = guarded_call(storage, lock)  # waits out an outage like any storage call
    try:
        yield
    finally:
        # a connection that died (database restart) took its lock with it
        with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()
        connection.close()


class Reaper:
    """Fails the trials of dead workers and enqueues them again (see the module rules).

    Also enqueues the retry of an interrupted trial that has none (its reaper died
    between the two steps, or another tool failed it) once it was seen so on two
    consecutive calls, so a worker still busy enqueuing its own retry is left alone.
    """

    def __init__(self, storage: BaseStorage, queue: CampaignQueue) -> None:
        self.storage = storage
        self.queue = queue
        self._suspects: set[tuple[str, int]] = set()

    def reap(self) -> list[str]:
        """Fail and re-enqueue the trials of dead workers; one line per trial. Cheap:
        one query per active experiment, so it can run every second."""
        if not has_heartbeat(self.storage) or not heartbeats_trusted(self.storage):
            return []  # no heartbeat, or every one is stale after a database outage
        entries = self.queue.entries(with_trials=False)
        return [line for entry in entries for line in self._stale(entry)]

    def requeue_orphans(self) -> list[str]:
        """Enqueue the retry of each interrupted trial that has none, once it was seen so
        on two consecutive calls; one line per trial. Reads every trial: call it rarely."""
        if not has_heartbeat(self.storage):
            return []
        entries = self.queue.entries()
        orphans = [
            (entry, t)
            for entry in entries
            if entry.stored_state not in TERMINAL
            for t in entry.trials
            if needs_retry(t) and not _has_retry(entry.trials, t.number)
        ]
        keys = {(entry.study_name, t.number) for entry, t in orphans}
        ready = [(e, t) for e, t in orphans if (e.study_name, t.number) in self._suspects]
        self._suspects = keys
        lines: list[str] = []
        if ready:
            with campaign_lock(self.storage, self.queue.campaign):
                for entry, t in ready:
                    if enqueue_retry(self.storage, entry.study_name, t):
                        lines.append(f"{entry.name} trial {t.number}: interrupted; queued again")
        return lines

    def _stale(self, entry: Entry) -> list[str]:
        rdb: Any = self.storage
        lines: list[str] = []
        # The query optuna.storages.fail_stale_trials runs; called directly so that only
        # the process whose RUNNING -> FAIL update wins enqueues the retry.
        for trial_id in stale_trial_ids(self.storage, entry.study_id):
            t = self.storage.get_trial(trial_id)
            who = f"{t.user_attrs.get(T_WORKER, '?')} on {t.user_attrs.get(T_HOST, '?')}"
            reason = f"worker {who} stopped beating (no heartbeat for {rdb.grace_period} s)"
            with contextlib.suppress(UpdateFinishedTrialError):
                self.storage.set_trial_user_attr(trial_id, T_INTERRUPTED, reason)
            try:
                won = self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except UpdateFinishedTrialError:
                continue  # another reaper, or the worker itself, got there first
            if not won:
                continue
            if entry.stored_state in TERMINAL:
                lines.append(f"{entry.name} trial {t.number}: {reason}; not re-run")
                continue
            with campaign_lock(self.storage, self.queue.campaign):
                enqueue_retry(self.storage, entry.study_name, self.storage.get_trial(trial_id))
            lines.append(f"{entry.name} trial {t.number}: {reason}; queued again")
        return lines


def _has_retry(trials: list[Any], number: int) -> bool:
    return any(o.user_attrs.get(T_RETRY_OF) == number for o in trials)


def prepare_worker_process(threads: int | None = None) -> None:
    """Set up a worker process before its first trial is asked.

    Imports and touches the training stack: a first trial otherwise spends seconds in
    module initialisation and first-call set-up that hold the GIL, and its heartbeat
    thread can miss the grace period, so a live worker would look dead to the other
    machines. Silences Optuna's warnings about heartbeats with ask/tell (our design).
    """
    import warnings

    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    import sklearn.metrics  # noqa: F401 - imported for its side effect: loaded now
    import torch

    import engine.dataset.windows
    import engine.train.trainer  # noqa: F401

    if threads:
        torch.set_num_threads(threads)
    layer = torch.nn.Linear(4, 4)
    layer(torch.zeros(2, 4)).sum().backward()
