"""One worker's loop: pick -> ask -> prepare data -> train (per-epoch reports) -> tell.

A worker needs only a storage URL and a campaign name: every experiment's resolved
config and architecture grid are read from its study, so the same loop runs as a local
process of the engine (`python -m engine.worker.trial_loop`, events as JSON lines on stdout,
control lines on stdin) or on another machine against a shared database.

Rules:
- The queue is read before every trial, so pause / skip / reorder take effect at the
  next trial; `interrupt` (stop now) takes effect at the next epoch boundary and the
  trial is recorded as interrupted (FAIL, not counted) and re-enqueued.
- A failing trial (exception, NaN loss) is recorded FAIL with its reason and counted;
  the queue marks the experiment failed after too many in a row. An architecture that
  does not fit this worker's memory is no failure: it is deferred to a worker it fits
  (engine.worker.fit), never counted.
- n_trials holds across workers: a trial asked past n_trials (two workers racing) is
  recorded as surplus (FAIL, not counted) and dropped.
- A database outage is waited out inside the storage (`engine.storage.outage`): a trial
  whose report or tell meets one just waits. Past the patience `StorageUnreachable`
  leaves the trial RUNNING, never failed (nothing can be written), and ends the worker;
  whoever sees its process gone records the trial interrupted and re-enqueues it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from engine import protocol as p
from engine.campaign.search import (
    ARCH_PARAM,
    distributions,
    make_pruner,
    make_sampler,
    trial_inputs,
)
from engine.storage.queue import (
    T_COUNTED,
    T_REASON,
    T_SURPLUS,
    CampaignQueue,
    Entry,
)
from engine.storage.recovery import HOST
from engine.worker import trial_lifecycle as lifecycle
from engine.worker.fit import FitJudge, defer_trial

Emit = Callable[[p.Event], None]
MAX_DEFERRALS = 3  # fresh asks per pick whose architecture may not fit this worker


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
        memory_limit: int | None = None,
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
        self.memory_limit = memory_limit  # bytes a trial may use here (None: free memory)
        self.fit = FitJudge(device, memory_limit)

    def run(self) -> int:
        if self.threads:
            from engine.train.device import set_threads

            set_threads(self.threads)
        while not self.flags.should_exit():
            if self.flags.hold:  # thermal policy, or the host drained or stopped
                if self.exit_when_idle and self.queue.all_terminal():
                    return 0
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
        for _ in range(MAX_DEFERRALS):  # sampled an architecture too big for us: again
            if asked != "deferred" or self.flags.hold or self.flags.should_exit():
                break  # a hold (a drain, the thermal policy) ends the asking here too
            asked = self._ask()
        if asked is None or isinstance(asked, str):
            return False
        entry, study, trial = asked
        try:
            if entry.config.fuse != 1:  # a fused group led by this trial
                from engine.worker.trial_group import run_group

                self.trials_run += run_group(self, entry, study, trial) - 1
            else:
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
                    reason=lifecycle.DECLARED_DEAD,
                )
            )
        self.trials_run += 1
        self.queue.refresh()  # done / failed transitions, also without an engine
        return True

    def _ask(self) -> tuple[Entry, optuna.Study, optuna.trial.Trial] | str | None:
        with lifecycle.ask_lock(self.lock_path):
            self.fit.refresh()
            entry = self.queue.pick(accept=self.fit.runnable)
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
            trial = self.fit.ask(study, entry, distributions(cfg, len(entry.grid)))
            tid = trial._trial_id
            lifecycle.claim(self, tid)
            self.queue.mark_started(entry)
            if self._surplus(entry, trial.number):
                self.storage.set_trial_user_attr(tid, T_SURPLUS, True)
                # a leftover retry may have been closed by the queue meanwhile
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    self.storage.set_trial_state_values(tid, TrialState.FAIL)
                return None
            if not self.fit.fits(entry, int(trial.params[ARCH_PARAM])):
                capacity = self.fit.capacity(entry)
                defer_trial(self.storage, entry, self.storage.get_trial(tid), capacity)
                return "deferred"
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
        """Train one trial alone and settle it (`engine.worker.trial_lifecycle`)."""
        cfg = entry.config
        inputs = trial_inputs(trial.params, cfg, entry.grid)
        frozen = lifecycle.announce(self, entry, trial, inputs)
        started = time.monotonic()
        recorder = lifecycle.EpochRecorder(self, entry, trial)
        heartbeat = lifecycle.Heartbeat(self.storage, trial._trial_id)
        result: Any = None
        error: Exception | None = None
        try:
            # torch is imported here, after TrialStarted, so a front-end sees the trial
            # (and its data preparation) at once
            from engine.train.device import resolve_device
            from engine.train.trainer import train_trial

            options = self.run_options(cfg)
            data = self._prepared(entry, resolve_device(options.device))
            arch, _, params = inputs
            result = train_trial(
                arch,
                params,
                data,
                options,
                on_epoch=recorder,
                should_stop=self.flags.should_interrupt,
            )
        except Exception as exc:
            error = exc
        finally:
            heartbeat.stop()
        outcome = lifecycle.settle(self, entry, study, trial, result, error, recorder.losses)
        lifecycle.finished(self, entry, trial, outcome, inputs, frozen.datetime_start, started)

    def run_options(self, cfg: Any) -> Any:
        """How a trial of experiment config `cfg` runs on this worker: its device,
        threads and memory limit, the experiment's precision, objective and dropout
        sites. A solo trial (`_train`) and a fused group (`engine.worker.trial_group`) alike."""
        from engine.train.config import RunOptions

        return RunOptions(
            device=self.device or cfg.device,
            precision=cfg.precision,
            threads=self.threads,
            memory_limit_bytes=self.memory_limit,
            objective=cfg.objective,
            dropout_sites=cfg.dropout_sites,
        )

    def tell_result(
        self, entry: Entry, study: optuna.Study, trial: optuna.trial.Trial, result: Any
    ) -> tuple[p.TrialState, float | None, dict[str, float], str]:
        """Store a trained trial's result attributes and tell Optuna its value (a NaN or
        infinite one fails it, counted): (state, value, metrics, reason). One trial trained
        alone (`_train`) or as a member of a fused group (`engine.worker.trial_group`)."""
        cfg, tid = entry.config, trial._trial_id
        value = float(result.value)
        metrics = {k: float(v) for k, v in result.val_metrics.items()}
        for key, v in (
            ("metrics", metrics),
            ("best_epoch", result.best_epoch),
            ("epochs_run", result.epochs_run),
            ("device", result.device),
            ("micro_batch", result.micro_batch),
            ("train_duration_s", result.duration_s),
            # both selection figures, whichever the experiment's objective is
            ("val_bce", metrics.get("bce", math.nan)),
            ("val_auc", metrics.get("roc_auc", math.nan)),
            ("objective", cfg.objective),
            ("normalization", cfg.data.normalization),
            ("dropout_sites", list(cfg.dropout_sites)),
            # precision, attention kernel, threads and the step times that chose them
            ("run_choice", result.extra.get("run_choice")),
        ):
            self.storage.set_trial_user_attr(tid, key, v)
        if not math.isfinite(value):
            reason = "loss is NaN or infinite"
            self._fail(tid, reason)
            return "failed", None, metrics, reason
        study.tell(trial, value)
        return "complete", value, metrics, ""

    def _fail(self, tid: int, reason: str) -> None:
        self.storage.set_trial_user_attr(tid, T_COUNTED, True)
        self.storage.set_trial_user_attr(tid, T_REASON, reason[:500])
        self.storage.set_trial_state_values(tid, TrialState.FAIL)
