"""Database outages: the one place that knows what an outage is and waits it out.

A shared database (PostgreSQL) restarts, drops connections, is briefly unreachable. Every
storage call of the engine, a node and their workers goes through `GuardedStorage`, which
runs it under an `OutageGuard`:

- An outage is an error of the connection, not of the data: SQLAlchemy's
  `OperationalError` / `InterfaceError` / `DisconnectionError` (server shut down, restart,
  connection refused or reset, "the database system is starting up"), psycopg's
  `OperationalError`, or a socket error, found anywhere in the exception's cause chain
  (Optuna's RDBStorage re-raises them as `StorageInternalError` with a misleading "invalid
  data in the commit" message). Anything else (`IntegrityError`, `DataError`, an unknown
  study, a finished trial) is "your data is wrong" and is raised at once, as before.
- An outage is retried with backoff (0.5 s doubling to 5 s) until `patience_s` has passed
  since the first failed call of this process; then `StorageUnreachable` is raised with a
  one-line message that says the campaign is resumable. Any call that succeeds ends it.
- While it lasts, `on_change` is told (at the start, every `report_every_s`, and when the
  storage answers again) so front-ends show "storage unreachable, retrying (1m12s)".
- Pooled connections that died with the server are replaced on checkout
  (`pool_pre_ping`, set by `engine.storage.backend.open_storage`).
- A retried write whose first attempt may have committed before the connection broke is
  made idempotent where Optuna's API allows it: a state change that finds the trial
  already in the requested state has succeeded.
- After an outage, heartbeats are stale through no fault of the workers:
  `quiet_after_outage(grace)` tells reapers to wait one grace period before judging.

Journal files have no outages: `guard_storage` returns them unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from engine import protocol as p
from engine.storage.backend import mask_url, open_storage

DEFAULT_PATIENCE_S = 300.0
EXIT_STORAGE_UNREACHABLE = 75  # EX_TEMPFAIL: try again later (the campaign is resumable)
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0
REPORT_EVERY_S = 10.0
T = TypeVar("T")

_OUTAGE_NAMES = {
    "OperationalError",  # sqlalchemy.exc and psycopg / psycopg2: connection-level failures
    "InterfaceError",  # a closed connection used again
    "DisconnectionError",  # sqlalchemy: pool pre-ping gave up
    "AdminShutdown",  # psycopg.errors: "terminating connection due to administrator command"
    "CannotConnectNow",  # psycopg.errors: "the database system is starting up"
}
_OUTAGE_MODULES = ("sqlalchemy", "psycopg", "psycopg2", "pymysql", "MySQLdb")


def is_outage(error: BaseException) -> bool:
    """True when `error` (or anything in its cause chain) is a lost or refused connection
    to the database, not a problem with the data sent."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        module = type(current).__module__.split(".")[0]
        if module in _OUTAGE_MODULES:
            if getattr(current, "connection_invalidated", False):
                return True
            if any(cls.__name__ in _OUTAGE_NAMES for cls in type(current).__mro__):
                return True
        current = current.__cause__ or current.__context__
    return False


def first_line(error: BaseException) -> str:
    """The first line of the innermost cause (Optuna's wrapper text says nothing)."""
    inner = error
    seen = {id(inner)}
    while True:  # sqlalchemy keeps the driver's error in .orig
        deeper = inner.__cause__ or getattr(inner, "orig", None)
        if not isinstance(deeper, BaseException) or id(deeper) in seen:
            break
        seen.add(id(deeper))
        inner = deeper
    lines = str(inner).strip().splitlines()
    return lines[0].strip() if lines else type(inner).__name__


def clock_text(seconds: float) -> str:
    """72.4 -> "1m12s"; 5 -> "5s"."""
    s = int(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class StorageUnreachable(Exception):
    """The storage stayed unreachable for the whole patience. Nothing is lost: completed
    trials are stored, running ones are recovered as interrupted when the campaign resumes."""


@dataclass(frozen=True)
class OutageStatus:
    """What `on_change` is told: unreachable for `waited_s` (or reachable again)."""

    reachable: bool
    waited_s: float
    patience_s: float
    error: str


class OutageGuard:
    """Runs storage calls, waiting out outages within a patience (see the module rules).

    Thread-safe: a worker's heartbeat thread and its main thread share one guard, and
    the outage (its start, its reports) is one for the whole process.
    """

    def __init__(
        self,
        patience_s: float = DEFAULT_PATIENCE_S,
        *,
        label: str = "storage",
        on_change: Callable[[OutageStatus], None] | None = None,
        give_up: Callable[[], bool] | None = None,
        report_every_s: float = REPORT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.patience_s = float(patience_s)
        self.label = label
        self.on_change = on_change
        self.give_up = give_up or (lambda: False)
        self.report_every_s = report_every_s
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._since: float | None = None
        self._next_report = 0.0
        self._recovered_at: float | None = None
        self.outages = 0  # how many outages this process has waited out (or is in)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        delay = FIRST_DELAY_S
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as error:
                if not is_outage(error):
                    raise
                waited = self._failed(error)
                if waited >= self.patience_s or self.give_up():
                    raise StorageUnreachable(self.message(waited, error)) from error
                self.sleep(min(delay, max(0.05, self.patience_s - waited)))
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            self._succeeded()
            return result

    def message(self, waited: float, error: BaseException) -> str:
        return (
            f"{self.label} unreachable for {clock_text(waited)} ({mask_url(first_line(error))}); "
            "completed trials are stored: run the same command again to resume"
        )

    @property
    def unreachable_for(self) -> float | None:
        """Seconds since the current outage began, None while the storage answers."""
        since = self._since
        return None if since is None else self.clock() - since

    def quiet_after_outage(self, grace_s: float) -> bool:
        """True during an outage and for `grace_s` after it: heartbeats missed meanwhile
        say nothing about the workers, so no one should be judged dead yet."""
        if self._since is not None:
            return True
        return self._recovered_at is not None and self.clock() - self._recovered_at < grace_s

    def _failed(self, error: BaseException) -> float:
        now = self.clock()
        with self._lock:
            if self._since is None:
                self._since = now
                self._next_report = now
                self.outages += 1
            waited = now - self._since
            report = now >= self._next_report
            if report:
                self._next_report = now + self.report_every_s
        if report:
            self._tell(OutageStatus(False, waited, self.patience_s, first_line(error)))
        return waited

    def _succeeded(self) -> None:
        if self._since is None:  # the common case: no lock, nothing to do
            return
        now = self.clock()
        with self._lock:
            since, self._since = self._since, None
            if since is None:
                return
            self._recovered_at = now
        self._tell(OutageStatus(True, now - since, self.patience_s, ""))

    def _tell(self, status: OutageStatus) -> None:
        if self.on_change is not None:
            self.on_change(status)


class GuardedStorage(BaseStorage, BaseHeartbeat):
    """An RDBStorage whose every call runs under an `OutageGuard`.

    It keeps the RDB storage's heartbeat (so `optuna.storages.fail_stale_trials` and
    `engine.worker.heartbeat` work through it) and exposes `inner`, `engine`,
    `heartbeat_interval` and `grace_period` of the storage it wraps.
    """

    def __init__(self, inner: RDBStorage, guard: OutageGuard) -> None:
        self.inner = inner
        self.guard = guard

    # -- attributes of the RDB storage that the campaign code reads or sets
    @property
    def engine(self) -> Any:
        return self.inner.engine

    @property
    def heartbeat_interval(self) -> int | None:
        return self.inner.heartbeat_interval

    @heartbeat_interval.setter
    def heartbeat_interval(self, value: int | None) -> None:
        self.inner.heartbeat_interval = value

    @property
    def grace_period(self) -> int | None:
        return self.inner.grace_period

    @grace_period.setter
    def grace_period(self, value: int | None) -> None:
        self.inner.grace_period = value

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.guard.call(getattr(self.inner, name), *args, **kwargs)

    # -- BaseStorage
    def create_new_study(self, directions: Any, study_name: str | None = None) -> int:
        return int(self._call("create_new_study", directions, study_name))

    def delete_study(self, study_id: int) -> None:
        self._call("delete_study", study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call("set_study_user_attr", study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call("set_study_system_attr", study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return int(self._call("get_study_id_from_name", study_name))

    def get_study_name_from_id(self, study_id: int) -> str:
        return str(self._call("get_study_name_from_id", study_id))

    def get_study_directions(self, study_id: int) -> Any:
        return self._call("get_study_directions", study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._call("get_study_user_attrs", study_id))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._call("get_study_system_attrs", study_id))

    def get_all_studies(self) -> Any:
        return self._call("get_all_studies")

    def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
        return int(self._call("create_new_trial", study_id, template_trial))

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: Any
    ) -> None:
        self._call("set_trial_param", trial_id, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return int(self._call("get_trial_id_from_study_id_trial_number", study_id, trial_number))

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        attempts = {"n": 0}

        def attempt() -> bool:
            attempts["n"] += 1
            try:
                return bool(self.inner.set_trial_state_values(trial_id, state, values))
            except UpdateFinishedTrialError:
                # a retry after a commit whose answer the outage swallowed
                if attempts["n"] > 1 and self.inner.get_trial(trial_id).state == state:
                    return True
                raise

        return self.guard.call(attempt)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._call("set_trial_intermediate_value", trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call("set_trial_user_attr", trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call("set_trial_system_attr", trial_id, key, value)

    def get_trial(self, trial_id: int) -> Any:
        return self._call("get_trial", trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> Any:
        return self._call("get_all_trials", study_id, deepcopy=deepcopy, states=states)

    def get_n_trials(self, study_id: int, state: Any = None) -> int:
        return int(self._call("get_n_trials", study_id, state))

    def get_best_trial(self, study_id: int) -> Any:
        return self._call("get_best_trial", study_id)

    def remove_session(self) -> None:
        self.inner.remove_session()

    # -- BaseHeartbeat
    def record_heartbeat(self, trial_id: int) -> None:
        self._call("record_heartbeat", trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return list(self._call("_get_stale_trial_ids", study_id))

    def get_heartbeat_interval(self) -> int | None:
        return self.inner.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return self.inner.get_heartbeat_stale_trial_callback()

    def get_failed_trial_callback(self) -> Any:
        return self.inner.get_failed_trial_callback()


def open_guarded(
    url: str,
    patience_s: float,
    emit: Callable[[p.Event], None] | None,
    *,
    source: str = "engine",
    give_up: Callable[[], bool] | None = None,
    warn: Callable[[str], None] | None = None,
) -> BaseStorage:
    """Open the storage at `url` (`engine.storage.backend.open_storage`, `warn` told of a journal
    repair) with its calls under an `OutageGuard` that reports to `emit` as
    `StorageOutage` events from `source`."""

    guard = OutageGuard(patience_s, label=mask_url(url), give_up=give_up)
    storage = guard_storage(open_storage(url, warn=warn), guard)
    if emit is not None:
        report_outages(storage, emit, source)
    return storage


def report_outages(storage: BaseStorage, emit: Callable[[p.Event], None], source: str) -> None:
    """Make the guard of `storage` (if any) report to `emit` as `StorageOutage` events."""
    guard = guard_of(storage)
    if guard is None:
        return

    def tell(status: OutageStatus) -> None:
        emit(
            p.StorageOutage(
                reachable=status.reachable,
                waited_s=round(status.waited_s, 1),
                patience_s=status.patience_s,
                error=mask_url(status.error),
                source=source,
            )
        )

    guard.on_change = tell


def heartbeats_trusted(storage: BaseStorage) -> bool:
    """False during an outage and for one grace period after it (plus the longest retry
    pause, which a worker's heartbeat thread may still be sleeping when the database
    returns): a stale heartbeat then means the database was away, not the worker."""
    guard = guard_of(storage)
    grace = getattr(storage, "grace_period", None) or 2 * (
        getattr(storage, "heartbeat_interval", None) or 60
    )
    return guard is None or not guard.quiet_after_outage(float(grace) + MAX_DELAY_S)


def guard_storage(storage: BaseStorage, guard: OutageGuard) -> BaseStorage:
    """`storage` with its calls under `guard` (databases), or unchanged (journal files)."""
    if isinstance(storage, RDBStorage):
        return GuardedStorage(storage, guard)
    return storage


def guard_of(storage: BaseStorage) -> OutageGuard | None:
    """The guard of a guarded storage, None for any other."""
    return storage.guard if isinstance(storage, GuardedStorage) else None


def guarded_call(storage: BaseStorage, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` (a direct use of the storage's database, e.g. an advisory lock) under
    the storage's guard when it has one."""
    guard = guard_of(storage)
    return fn(*args, **kwargs) if guard is None else guard.call(fn, *args, **kwargs)
