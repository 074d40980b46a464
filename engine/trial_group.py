"""A worker's fused group (`fuse` != 1): ask K trials of one architecture, train them as
one model (`engine.train.fused_trainer`), tell each to Optuna as its own trial.

How a group is asked (under the ask lock, like a single trial):
- the leader is the trial `Worker._ask` got: a waiting trial (forced extreme, retry of
  an interrupted one) if there is one, else one the sampler chose. Its architecture and
  the shape knobs (`epochs`, `batch_size`, when searched) are the group's;
- while the group is short of K: the oldest waiting trial joins when it has those same
  values (extremes and retries join groups of their architecture) and the growing
  stops at one that does not (it leads a later group); with no waiting trial, a new
  trial is asked with the group's values fixed (`optuna.samplers.PartialFixedSampler`)
  and its other knobs sampled by the experiment's sampler;
- K is `fuse`, or for "auto" `engine.train.fuse_size.choose_fuse` (memory estimate, short
  timing); never more than the trials left to the experiment, nor half its n_trials (so
  most of an experiment's trials never share one architecture), nor than the memory
  estimate allows at the full batch. A group of one is trained by the one-trial
  path (`Worker._train`), exactly as `fuse = 1`; so is every trial of an experiment whose
  `objective` is not "val_bce" (the fused trainer selects epochs by validation BCE).

Every member is an ordinary Optuna trial: its own parameters, TrialStarted, EpochEnded
per epoch, intermediate values and pruning, its own heartbeat, and its own
TrialFinished / tell as soon as it leaves the group, its train losses (`train_losses`)
and both selection figures stored as on a solo trial. Members carry the attributes
`fused_group` (the leader's number) and `fused_k`; "auto" adds `fuse_calibration`.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from engine import protocol as p
from engine.queue import (
    T_COUNTED,
    T_EXTREME,
    T_HOST,
    T_PID,
    T_PID_START,
    T_REASON,
    T_SURPLUS,
    T_WORKER,
    Entry,
)
from engine.recovery import HOST, interrupt_trial, process_start
from engine.search import ARCH_PARAM, distributions, trial_inputs
from engine.trial_records import TRAIN_LOSSES

if TYPE_CHECKING:
    from engine.trial_loop import Worker

SHAPE_PARAMS = ("epochs", "batch_size")  # searched knobs a group's members share


def run_group(worker: Worker, entry: Entry, study: optuna.Study, leader: optuna.trial.Trial) -> int:
    """Ask the rest of the leader's group, train it; the number of trials run."""
    cfg = entry.config
    if cfg.objective != "val_bce":  # the fused trainer selects epochs by validation BCE only
        worker._train(entry, study, leader)
        return 1
    try:
        data, k, calibration = _group_size(worker, entry, leader)
    except Exception:  # data or device unusable: the one-trial path records why
        worker._train(entry, study, leader)
        return 1
    k = min(k, max(1, cfg.n_trials // 2))  # most of an experiment is never one architecture
    members, extra = _ask_members(worker, entry, study, leader, k - 1)
    trials = [leader, *members]
    if len(trials) == 1:
        worker._train(entry, study, leader)  # the one-trial path, as fuse = 1
    else:
        _train_members(worker, entry, study, trials, data, calibration)
    for trial in extra:
        worker._train(entry, study, trial)
    return len(trials) + len(extra)


def _group_size(
    worker: Worker, entry: Entry, leader: optuna.trial.Trial
) -> tuple[Any, int, dict[str, Any] | None]:
    """(prepared data, K before the trial-count caps, "auto"'s calibration figures)."""
    from engine.model.memory import max_fused_trials
    from engine.train.device import resolve_device, training_dtype
    from engine.train.fuse_size import MAX_AUTO, choose_fuse

    cfg = entry.config
    arch, _, params = trial_inputs(leader.params, cfg, entry.grid)
    device = resolve_device(worker.device or cfg.device)
    data = worker._prepared(entry, device)
    dtype = training_dtype(device, cfg.precision)
    spec = data.spec
    shape = {"context_len": spec.context_len, "patch_len": spec.patch_len, "stride": spec.stride}
    batch = min(params.batch_size, len(data.train))
    if cfg.fuse == "auto":
        choice = choose_fuse(arch, data.n_features, batch, device, dtype, cap=MAX_AUTO, **shape)
        return data, choice.k, choice.to_dict()
    bound = max_fused_trials(
        arch, data.n_features, batch, device, cap=int(cfg.fuse), dtype=dtype or _fp32(), **shape
    )
    return data, max(1, bound), None


def _fp32() -> Any:
    import torch

    return torch.float32


def _slots_left(worker: Worker, entry: Entry) -> int:
    taken = 0
    for t in worker.storage.get_all_trials(entry.study_id, deepcopy=False):
        if t.state in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED) or (
            t.state == TrialState.FAIL and t.user_attrs.get(T_COUNTED)
        ):
            taken += 1
    return entry.config.n_trials - taken


def _ask_members(
    worker: Worker, entry: Entry, study: optuna.Study, leader: optuna.trial.Trial, n: int
) -> tuple[list[optuna.trial.Trial], list[optuna.trial.Trial]]:
    """Up to n more trials of the leader's shape (module docstring); and any trial popped
    that turned out to have another shape (a race with another machine's worker),
    which the caller runs on its own."""
    from engine.trial_loop import _first_beat, ask_lock

    fixed = {k: leader.params[k] for k in (ARCH_PARAM, *SHAPE_PARAMS) if k in leader.params}
    space = distributions(entry.config, len(entry.grid))
    members: list[optuna.trial.Trial] = []
    extra: list[optuna.trial.Trial] = []
    storage = worker.storage
    with ask_lock(worker.lock_path):
        n = min(n, _slots_left(worker, entry))
        while len(members) < n:
            waiting = storage.get_all_trials(
                entry.study_id, deepcopy=False, states=(TrialState.WAITING,)
            )
            if waiting:
                oldest = min(waiting, key=lambda t: t.number)
                wanted = oldest.system_attrs.get("fixed_params") or {}
                if any(wanted.get(k) != v for k, v in fixed.items()):
                    break  # it leads a group of its own shape later
                trial = study.ask(space)
            else:
                base = study.sampler
                study.sampler = optuna.samplers.PartialFixedSampler(fixed, base)
                try:
                    trial = study.ask(space)
                finally:
                    study.sampler = base
            tid = trial._trial_id
            _first_beat(storage, tid)
            pid = os.getpid()
            for key, value in (
                (T_WORKER, worker.worker_id),
                (T_HOST, HOST),
                (T_PID, pid),
                (T_PID_START, process_start(pid)),
            ):
                storage.set_trial_user_attr(tid, key, value)
            if worker._surplus(entry, trial.number):
                storage.set_trial_user_attr(tid, T_SURPLUS, True)
                storage.set_trial_state_values(tid, TrialState.FAIL)
                break
            if any(trial.params.get(k) != v for k, v in fixed.items()):
                extra.append(trial)
                break
            members.append(trial)
    return members, extra


def _train_members(
    worker: Worker,
    entry: Entry,
    study: optuna.Study,
    trials: list[optuna.trial.Trial],
    data: Any,
    calibration: dict[str, Any] | None,
) -> None:
    from engine.train.config import RunOptions
    from engine.train.fused_trainer import train_group
    from engine.trial_loop import _Heartbeat

    cfg, storage = entry.config, worker.storage
    inputs = [trial_inputs(t.params, cfg, entry.grid) for t in trials]
    arch, n_params = inputs[0][0], inputs[0][1]
    started = time.monotonic()
    for trial, (_, _, params) in zip(trials, inputs, strict=True):
        tid = trial._trial_id
        extreme = storage.get_trial(tid).user_attrs.get(T_EXTREME) is not None
        for key, value in (
            ("architecture", arch.to_dict()),
            ("n_params", n_params),
            ("train_params", params.to_dict()),
            ("fused_group", trials[0].number),
            ("fused_k", len(trials)),
        ):
            storage.set_trial_user_attr(tid, key, value)
        if calibration is not None:
            storage.set_trial_user_attr(tid, "fuse_calibration", calibration)
        worker.emit(
            p.TrialStarted(
                experiment=entry.name,
                trial=trial.number,
                params=dict(trial.params),
                architecture=arch.to_dict(),
                n_params=n_params,
                worker=worker.worker_id,
                host=HOST,
                forced_extreme=extreme,
            )
        )
    heartbeats = [_Heartbeat(storage, t._trial_id) for t in trials]
    told: set[int] = set()
    losses: list[list[list[float]]] = [[] for _ in trials]  # per member, as Worker._train

    def on_epoch(i: int, report: Any) -> None:
        trial = trials[i]
        if math.isfinite(report.train_loss):
            losses[i].append([report.epoch, report.train_loss])
        worker.emit(
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

    def on_done(i: int, result: Any, error: BaseException | None) -> None:
        told.add(i)
        heartbeats[i].stop()
        storage.set_trial_user_attr(trials[i]._trial_id, TRAIN_LOSSES, losses[i])
        _finish(worker, entry, study, trials[i], arch, n_params, result, error, started)

    try:
        device = worker.device or cfg.device
        options = RunOptions(
            device=device,
            precision=cfg.precision,
            threads=worker.threads,
            dropout_sites=cfg.dropout_sites,
        )
        train_group(
            arch,
            [params for _, _, params in inputs],
            data,
            options,
            on_epoch=on_epoch,
            should_stop=worker.flags.should_interrupt,
            on_done=on_done,
        )
    except Exception as exc:  # building or training the group failed: every member left
        traceback.print_exc()
        for i in range(len(trials)):
            if i not in told:
                on_done(i, None, exc)
    finally:
        for beat in heartbeats:
            beat.stop()


def _finish(
    worker: Worker,
    entry: Entry,
    study: optuna.Study,
    trial: optuna.trial.Trial,
    arch: Any,
    n_params: int,
    result: Any,
    error: BaseException | None,
    started: float,
) -> None:
    """Tell one member's outcome, as `Worker._train` tells a solo trial's."""
    from engine.train.result import TrialDoesNotFit, TrialStopped

    storage, tid = worker.storage, trial._trial_id
    state: p.TrialState = "failed"
    value: float | None = None
    metrics: dict[str, float] = {}
    reason = ""
    try:
        if isinstance(error, optuna.TrialPruned):
            state, reason = "pruned", str(error)
            storage.set_trial_user_attr(tid, T_REASON, reason)
            study.tell(trial, state=TrialState.PRUNED)
        elif isinstance(error, TrialStopped):
            state, reason = "interrupted", "stopped"
            if worker.flags.orphaned():
                reason = "engine gone"
            interrupt_trial(storage, entry, storage.get_trial(tid), reason)
        elif error is not None:
            reason = f"{type(error).__name__}: {error}".strip()
            if not isinstance(error, TrialDoesNotFit):
                traceback.print_exception(error)
            worker._fail(tid, reason)
        else:
            state, value, metrics, reason = worker.tell_result(entry, study, trial, result)
    except optuna.exceptions.UpdateFinishedTrialError:
        state, value = "interrupted", None
        reason = "declared dead (heartbeat late); its retry runs instead"
    worker.emit(
        p.TrialFinished(
            experiment=entry.name,
            trial=trial.number,
            state=state,
            value=value,
            duration_s=time.monotonic() - started,
            worker=worker.worker_id,
            host=HOST,
            architecture=arch.to_dict(),
            n_params=n_params,
            metrics=metrics,
            reason=reason,
        )
    )
