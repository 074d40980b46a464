"""What every trial goes through, trained alone or as a member of a fused group.

`Worker._train` (one trial) and `engine.worker.trial_group` (K trials as one model) both:
1. `claim` an asked trial: first heartbeat, and who runs it (worker, host, pid);
2. `announce` it: its architecture, parameter count and training parameters stored,
   then `TrialStarted`;
3. per epoch, an `EpochRecorder`: the train loss kept for the stored loss curve,
   `EpochEnded`, the objective reported to Optuna and the pruner asked;
4. `settle` its outcome: pruned, interrupted (stopped, engine gone), deferred (does not
   fit), failed and counted (an error, a NaN loss) or complete (told with its value);
   the machine's faults (storage unreachable past its patience, outputs unwritable) are
   raised instead, because they are not the trial's: recovery records it interrupted;
5. `finished`: `TrialFinished`, its duration measured from the stored start so a
   front-end shows the same figure live and after a restart.
So a fused member is exactly the same Optuna trial, with the same events, as a solo one.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import threading
import time
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from engine import protocol as p
from engine.env_faults import describe_fault
from engine.filelock import held
from engine.storage.outage import StorageUnreachable
from engine.storage.queue import T_EXTREME, T_HOST, T_PID, T_PID_START, T_REASON, T_WORKER, Entry
from engine.storage.recovery import HOST, interrupt_trial, process_start
from engine.storage.trial_records import TRAIN_LOSSES
from engine.worker.fit import defer_trial

if TYPE_CHECKING:
    from engine.worker.trial_loop import Worker

Outcome = tuple[p.TrialState, float | None, dict[str, float], str]  # state, value, metrics, why
DECLARED_DEAD = "declared dead (heartbeat late); its retry runs instead"


@contextlib.contextmanager
def ask_lock(lock_path: str | None) -> Iterator[None]:
    """Serialise check-and-ask between local workers (the surplus check covers the rest)."""
    if lock_path is None:
        yield
        return
    with held(lock_path):
        yield


def claim(worker: Worker, trial_id: int) -> None:
    """Mark a just-asked trial as this worker's: first heartbeat, worker, host, pid."""
    storage = worker.storage
    first_beat(storage, trial_id)
    pid = os.getpid()
    for key, value in (
        (T_WORKER, worker.worker_id),
        (T_HOST, HOST),
        (T_PID, pid),
        (T_PID_START, process_start(pid)),
    ):
        storage.set_trial_user_attr(trial_id, key, value)


def announce(
    worker: Worker,
    entry: Entry,
    trial: optuna.trial.Trial,
    inputs: tuple[Any, int, Any],
    extra: dict[str, Any] | None = None,
) -> FrozenTrial:
    """Store what the trial trains (`trial_inputs`' architecture, parameter count and
    training parameters, plus `extra`), emit `TrialStarted`; the stored trial before."""
    arch, n_params, params = inputs
    storage, tid = worker.storage, trial._trial_id
    frozen = storage.get_trial(tid)
    attrs = {"architecture": arch.to_dict(), "n_params": n_params}
    attrs["train_params"] = params.to_dict()
    for key, value in {**attrs, **(extra or {})}.items():
        storage.set_trial_user_attr(tid, key, value)
    worker.emit(
        p.TrialStarted(
            experiment=entry.name,
            trial=trial.number,
            params=dict(trial.params),
            architecture=arch.to_dict(),
            n_params=n_params,
            worker=worker.worker_id,
            host=HOST,
            forced_extreme=frozen.user_attrs.get(T_EXTREME) is not None,
        )
    )
    return frozen


class EpochRecorder:
    """The `on_epoch` of one trial: keeps its train losses (the stored loss curve), emits
    `EpochEnded`, reports the epoch's objective and raises `optuna.TrialPruned` when the
    pruner says so."""

    def __init__(self, worker: Worker, entry: Entry, trial: optuna.trial.Trial) -> None:
        self.worker, self.entry, self.trial = worker, entry, trial
        self.losses: list[list[float]] = []  # [epoch, train loss]

    def __call__(self, report: Any) -> None:
        if math.isfinite(report.train_loss):
            self.losses.append([report.epoch, report.train_loss])
        self.worker.emit(
            p.EpochEnded(
                experiment=self.entry.name,
                trial=self.trial.number,
                epoch=report.epoch,
                train_loss=report.train_loss,
                val_loss=report.val_loss,
                elapsed_s=report.elapsed_s,
            )
        )
        if math.isfinite(report.objective):
            self.trial.report(report.objective, report.epoch)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {report.epoch}")


def machine_fault(error: BaseException) -> bool:
    """Is `error` the machine's (storage gone past its patience, outputs unwritable),
    not the trial's? Such a trial is left RUNNING for recovery, never failed."""
    return isinstance(error, StorageUnreachable) or (
        isinstance(error, OSError) and describe_fault(error) is not None
    )


def settle(
    worker: Worker,
    entry: Entry,
    study: optuna.Study,
    trial: optuna.trial.Trial,
    result: Any,
    error: BaseException | None,
    losses: list[list[float]],
) -> Outcome:
    """Record a trained trial's outcome (`result`, or the `error` that ended it) in the
    storage and tell Optuna. Raises the machine's faults (module docstring)."""
    from engine.train.result import TrialDoesNotFit, TrialStopped

    storage, tid = worker.storage, trial._trial_id
    if error is not None and machine_fault(error):
        raise error
    try:
        if error is None:
            storage.set_trial_user_attr(tid, TRAIN_LOSSES, losses)
            return worker.tell_result(entry, study, trial, result)
        if isinstance(error, optuna.TrialPruned):
            storage.set_trial_user_attr(tid, TRAIN_LOSSES, losses)
            storage.set_trial_user_attr(tid, T_REASON, str(error))
            study.tell(trial, state=TrialState.PRUNED)
            return "pruned", None, {}, str(error)
        if isinstance(error, TrialStopped):
            reason = "engine gone" if worker.flags.orphaned() else "stopped"
            interrupt_trial(storage, entry, storage.get_trial(tid), reason)
            return "interrupted", None, {}, reason
        if isinstance(error, TrialDoesNotFit):  # free memory shrank since the pick
            reason = f"deferred: {error}"
            capacity = worker.fit.capacity(entry)
            defer_trial(storage, entry, storage.get_trial(tid), capacity, reason)
            return "interrupted", None, {}, reason
        reason = f"{type(error).__name__}: {error}".strip()
        traceback.print_exception(error)
        worker._fail(tid, reason)
        return "failed", None, {}, reason
    except optuna.exceptions.UpdateFinishedTrialError:
        return "interrupted", None, {}, DECLARED_DEAD


def finished(
    worker: Worker,
    entry: Entry,
    trial: optuna.trial.Trial,
    outcome: Outcome,
    inputs: tuple[Any, int, Any],
    stored_start: datetime.datetime | None,
    started: float,
) -> None:
    """Emit `TrialFinished` for a settled trial."""
    state, value, metrics, reason = outcome
    arch, n_params, _ = inputs
    worker.emit(
        p.TrialFinished(
            experiment=entry.name,
            trial=trial.number,
            state=state,
            value=value,
            duration_s=stored_duration(stored_start, started),
            worker=worker.worker_id,
            host=HOST,
            architecture=arch.to_dict(),
            n_params=n_params,
            metrics=metrics,
            reason=reason,
        )
    )


def stored_duration(stored_start: datetime.datetime | None, started: float) -> float:
    """The trial's duration as the storage will hold it (from its stored start, data
    preparation included), so a front-end shows the same figure live and after a
    restart; the local clock (`time.monotonic()` at `started`) only when the storage has
    no start."""
    if stored_start is None:
        return time.monotonic() - started
    now = datetime.datetime.now(stored_start.tzinfo)
    return max(0.0, float((now - stored_start).total_seconds()))


def first_beat(storage: BaseStorage, trial_id: int) -> None:
    from optuna.storages._heartbeat import BaseHeartbeat

    if isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None:
        storage.record_heartbeat(trial_id)


class Heartbeat:
    """Optuna's heartbeat for ask/tell trials on storages that support it (RDB), so a
    dead worker's RUNNING trial is found stale and failed by `fail_stale_trials`."""

    def __init__(self, storage: BaseStorage, trial_id: int) -> None:
        from optuna.storages._heartbeat import BaseHeartbeat

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None:
            interval = storage.get_heartbeat_interval() or 60
            storage.record_heartbeat(trial_id)

            def beat() -> None:
                while not self._stop.wait(interval):
                    with contextlib.suppress(Exception):
                        storage.record_heartbeat(trial_id)

            self._thread = threading.Thread(target=beat, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
