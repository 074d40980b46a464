"""One worker's loop: pick -> ask -> prepare data -> train (per-epoch reports) -> tell.

A worker needs only a storage URL and a campaign name: every experiment's resolved
config and architecture grid are read from its study, so the same loop runs as a local
process of the engine (`python -m engine.trial_loop`, events as JSON lines on stdout,
control lines on stdin) or on another machine against a shared database.

Rules:
- The queue is read before every trial, so pause / skip / reorder take effect at the
  next trial; `interrupt` (stop now) takes effect at the next epoch boundary and the
  trial is recorded as interrupted (FAIL, not counted) and re-enqueued.
- A failing trial (exception, NaN loss, does not fit) is recorded FAIL with its reason
  and counted; the queue marks the experiment failed after too many in a row.
- n_trials holds across workers: a trial asked past n_trials (two workers racing) is
  recorded as surplus (FAIL, not counted) and dropped.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from engine import protocol as p
from engine.env_faults import describe_fault
from engine.filelock import held
from engine.queue import (
    T_COUNTED,
    T_EXTREME,
    T_HOST,
    T_PID,
    T_PID_START,
    T_REASON,
    T_SURPLUS,
    T_WORKER,
    CampaignQueue,
    Entry,
)
from engine.recovery import HOST, interrupt_trial, process_start
from engine.search import distributions, make_pruner, make_sampler, trial_inputs

Emit = Callable[[p.Event], None]


@dataclass
class Flags:
    """Set from another thread (control lines, signals); read between epochs and trials."""

    stop_after: bool = False  # finish the current trial, then exit
    interrupt: bool = False  # interrupt the current trial at the next epoch boundary
    exit_now: bool = False  # interrupt and exit
    hold: bool = False  # start no new trial (thermal policy)
    orphaned: Callable[[], bool] = field(default=lambda: False)

    def should_interrupt(self) -> bool:
        return self.interrupt or self.exit_now or self.orphaned()

    def should_exit(self) -> bool:
        return self.stop_after or self.exit_now or self.orphaned()


@contextlib.contextmanager
def ask_lock(lock_path: str | None) -> Iterator[None]:
    """Serialise check-and-ask between local workers (the surplus check covers the rest)."""
    if lock_path is None:
        yield
        return
    with held(lock_path):
        yield


class Worker:
    """Runs trials of a campaign until told to stop or nothing is left."""

    def __init__(
        self,
        storage: BaseStorage,
        campaign: str,
        *,
        worker_id: str,
        emit: Emit,
        flags: Flags | None = None,
        threads: int | None = None,
        device: str | None = None,
        parallel: bool = False,
        salt: int = 0,
        lock_path: str | None = None,
        exit_when_idle: bool = True,
        poll_s: float = 0.5,
    ) -> None:
        self.storage = storage
        self.queue = CampaignQueue(storage, campaign)
        self.worker_id = worker_id
        self.emit = emit
        self.flags = flags or Flags()
        self.threads = threads
        self.device = device
        self.parallel = parallel
        self.salt = salt
        self.lock_path = lock_path
        self.exit_when_idle = exit_when_idle
        self.poll_s = poll_s
        self._data: dict[str, Any] = {}
        self.trials_run = 0

    def run(self) -> int:
        if self.threads:
            from engine.train.device import set_threads

            set_threads(self.threads)
        while not self.flags.should_exit():
            if self.flags.hold:
                time.sleep(self.poll_s)
                continue
            self.flags.interrupt = False
            ran = self.run_one()
            if not ran:
                if self.exit_when_idle and self.queue.all_terminal():
                    return 0
                time.sleep(self.poll_s)
        return 0

    # ---------------------------------------------------------------- one trial

    def run_one(self) -> bool:
        """Ask and run one trial of the first runnable experiment; False if none."""
        asked = self._ask()
        if asked is None:
            return False
        entry, study, trial = asked
        try:
            self._train(entry, study, trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            self.emit(
                p.TrialFinished(
                    experiment=entry.name,
                    trial=trial.number,
                    state="interrupted",
                    value=None,
                    duration_s=0.0,
                    worker=self.worker_id,
                    host=HOST,
                    reason="declared dead (heartbeat late); its retry runs instead",
                )
            )
        self.trials_run += 1
        self.queue.refresh()  # done / failed transitions, also without an engine
        return True

    def _ask(self) -> tuple[Entry, optuna.Study, optuna.trial.Trial] | None:
        with ask_lock(self.lock_path):
            entry = self.queue.pick()
            if entry is None or entry.counts.consecutive_failures >= (
                entry.config.max_consecutive_failures
            ):
                return None
            cfg = entry.config
            salt = self.salt * 7919 + len(entry.trials)
            study = optuna.load_study(
                study_name=entry.study_name,
                storage=self.storage,
                sampler=make_sampler(cfg, len(entry.grid), parallel=self.parallel, salt=salt),
                pruner=make_pruner(cfg),
            )
            trial = study.ask(distributions(cfg, len(entry.grid)))
            tid = trial._trial_id
            _first_beat(self.storage, tid)
            pid = os.getpid()
            for key, value in (
                (T_WORKER, self.worker_id),
                (T_HOST, HOST),
                (T_PID, pid),
                (T_PID_START, process_start(pid)),
            ):
                self.storage.set_trial_user_attr(tid, key, value)
            self.queue.mark_started(entry)
            if self._surplus(entry, trial.number):
                self.storage.set_trial_user_attr(tid, T_SURPLUS, True)
                self.storage.set_trial_state_values(tid, TrialState.FAIL)
                return None
        return entry, study, trial

    def _surplus(self, entry: Entry, number: int) -> bool:
        taken = 0
        for t in self.storage.get_all_trials(entry.study_id, deepcopy=False):
            if t.number >= number:
                continue
            # RUNNING, WAITING, COMPLETE, PRUNED and counted failures hold a slot
            if t.state != TrialState.FAIL or t.user_attrs.get(T_COUNTED):
                taken += 1
        return taken >= entry.config.n_trials

    def _prepared(self, entry: Entry, device: Any) -> Any:
        from engine.dataset.manifest import load_processed
        from engine.dataset.windows import prepare_data

        spec = entry.config.data
        key = repr((spec, str(device)))
        if key not in self._data:
            d = spec
            frame, _ = load_processed(d.dataset, d.tier, d.version)
            self._data.clear()  # one data set in memory at a time
            self._data[key] = prepare_data(frame, spec, device)
        return self._data[key]

    def _train(self, entry: Entry, study: optuna.Study, trial: optuna.trial.Trial) -> None:
        from engine.train.config import RunOptions
        from engine.train.result import TrialDoesNotFit, TrialStopped

        cfg = entry.config
        tid = trial._trial_id
        arch, n_params, params = trial_inputs(trial.params, cfg, entry.grid)
        frozen = self.storage.get_trial(tid)
        extreme = frozen.user_attrs.get(T_EXTREME) is not None
        self.storage.set_trial_user_attr(tid, "architecture", arch.to_dict())
        self.storage.set_trial_user_attr(tid, "n_params", n_params)
        self.storage.set_trial_user_attr(tid, "train_params", params.to_dict())
        self.emit(
            p.TrialStarted(
                experiment=entry.name,
                trial=trial.number,
                params=dict(trial.params),
                architecture=arch.to_dict(),
                n_params=n_params,
                worker=self.worker_id,
                host=HOST,
                forced_extreme=extreme,
            )
        )
        started = time.monotonic()
        state: p.TrialState = "failed"
        value: float | None = None
        metrics: dict[str, float] = {}
        reason = ""

        def on_epoch(report: Any) -> None:
            self.emit(
                p.EpochEnded(
                    experiment=entry.name,
                    trial=trial.number,
                    epoch=report.epoch,
                    train_loss=report.train_loss,
                    val_loss=report.val_loss,
                    elapsed_s=report.elapsed_s,
                )
            )
            if math.isfinite(report.val_loss):
                trial.report(report.val_loss, report.epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {report.epoch}")

        heartbeat = _Heartbeat(self.storage, tid)
        try:
            # torch is imported here, after TrialStarted, so a front-end sees the trial
            # (and its data preparation) at once
            from engine.train.device import resolve_device
            from engine.train.trainer import train_trial

            device = self.device or cfg.device
            data = self._prepared(entry, resolve_device(device))
            options = RunOptions(device=device, precision=cfg.precision, threads=self.threads)
            result = train_trial(
                arch,
                params,
                data,
                options,
                on_epoch=on_epoch,
                should_stop=self.flags.should_interrupt,
            )
        except optuna.TrialPruned as exc:
            state, reason = "pruned", str(exc)
            self.storage.set_trial_user_attr(tid, T_REASON, reason)
            study.tell(trial, state=TrialState.PRUNED)
        except TrialStopped:
            state, reason = "interrupted", "stopped"
            if self.flags.orphaned():
                reason = "engine gone"
            interrupt_trial(self.storage, entry, self.storage.get_trial(tid), reason)
        except OSError as exc:
            if describe_fault(exc):
                raise  # the machine's fault, not the trial's: left to recovery, not failed
            reason = f"{type(exc).__name__}: {exc}".strip()
            traceback.print_exc()
            self._fail(tid, reason)
        except (TrialDoesNotFit, Exception) as exc:
            reason = f"{type(exc).__name__}: {exc}".strip()
            if not isinstance(exc, TrialDoesNotFit):
                traceback.print_exc()
            self._fail(tid, reason)
        else:
            value = float(result.value)
            metrics = {k: float(v) for k, v in result.val_metrics.items()}
            for key, v in (
                ("metrics", metrics),
                ("best_epoch", result.best_epoch),
                ("epochs_run", result.epochs_run),
                ("device", result.device),
                ("micro_batch", result.micro_batch),
                ("train_duration_s", result.duration_s),
            ):
                self.storage.set_trial_user_attr(tid, key, v)
            if not math.isfinite(value):
                reason = "loss is NaN or infinite"
                value = None
                self._fail(tid, reason)
            else:
                state = "complete"
                study.tell(trial, value)
        finally:
            heartbeat.stop()
        self.emit(
            p.TrialFinished(
                experiment=entry.name,
                trial=trial.number,
                state=state,
                value=value,
                duration_s=time.monotonic() - started,
                worker=self.worker_id,
                host=HOST,
                architecture=arch.to_dict(),
                n_params=n_params,
                metrics=metrics,
                reason=reason,
            )
        )

    def _fail(self, tid: int, reason: str) -> None:
        self.storage.set_trial_user_attr(tid, T_COUNTED, True)
        self.storage.set_trial_user_attr(tid, T_REASON, reason[:500])
        self.storage.set_trial_state_values(tid, TrialState.FAIL)


def _first_beat(storage: BaseStorage, trial_id: int) -> None:
    from optuna.storages._heartbeat import BaseHeartbeat

    if isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None:
        storage.record_heartbeat(trial_id)


class _Heartbeat:
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
