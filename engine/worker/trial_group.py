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

import time
import traceback
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from engine.campaign.search import ARCH_PARAM, distributions, trial_inputs
from engine.storage.queue import (
    T_COUNTED,
    T_SURPLUS,
    Entry,
)
from engine.worker import trial_lifecycle as lifecycle

if TYPE_CHECKING:
    from engine.worker.trial_loop import Worker

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
    from engine.train.autotune import apply_run_choice
    from engine.train.device import resolve_device
    from engine.train.fuse_size import choose_fuse
    from engine.train.memory import max_fused_trials

    cfg = entry.config
    arch, _, params = trial_inputs(leader.params, cfg, entry.grid)
    device = resolve_device(worker.device or cfg.device)
    data = worker._prepared(entry, device)
    spec = data.spec
    shape = {"context_len": spec.context_len, "patch_len": spec.patch_len, "stride": spec.stride}
    batch = min(params.batch_size, len(data.train))
    # the precision, threads and attention kernel a solo trial of it would run with
    options = worker.run_options(cfg)
    dtype = apply_run_choice(arch, data.n_features, batch, device, options, **shape).dtype
    memory = worker.memory_limit
    if cfg.fuse == "auto":
        choice = choose_fuse(
            arch,
            data.n_features,
            batch,
            device,
            dtype,
            available=memory,
            dropout_sites=options.dropout_sites,
            **shape,
        )
        return data, choice.k, choice.to_dict()
    bound = max_fused_trials(
        arch,
        data.n_features,
        batch,
        device,
        cap=int(cfg.fuse),
        available=memory,
        dtype=dtype or _fp32(),
        dropout_sites=options.dropout_sites,
        **shape,
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

    fixed = {k: leader.params[k] for k in (ARCH_PARAM, *SHAPE_PARAMS) if k in leader.params}
    space = distributions(entry.config, len(entry.grid))
    members: list[optuna.trial.Trial] = []
    extra: list[optuna.trial.Trial] = []
    storage = worker.storage
    with lifecycle.ask_lock(worker.lock_path):
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
            lifecycle.claim(worker, tid)
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
    """Train the group as one model; each member is announced, recorded per epoch and
    settled exactly as a solo trial (`engine.worker.trial_lifecycle`) as soon as it leaves."""
    from engine.train.fused_trainer import train_group

    cfg, storage = entry.config, worker.storage
    inputs = [trial_inputs(t.params, cfg, entry.grid) for t in trials]
    extra: dict[str, Any] = {"fused_group": trials[0].number, "fused_k": len(trials)}
    if calibration is not None:
        extra["fuse_calibration"] = calibration
    stored = [
        lifecycle.announce(worker, entry, t, i, extra) for t, i in zip(trials, inputs, strict=True)
    ]
    started = time.monotonic()
    recorders = [lifecycle.EpochRecorder(worker, entry, t) for t in trials]
    heartbeats = [lifecycle.Heartbeat(storage, t._trial_id) for t in trials]
    told: set[int] = set()

    def on_epoch(i: int, report: Any) -> None:
        recorders[i](report)

    def on_done(i: int, result: Any, error: BaseException | None) -> None:
        told.add(i)
        heartbeats[i].stop()
        losses = recorders[i].losses
        outcome = lifecycle.settle(worker, entry, study, trials[i], result, error, losses)
        start = stored[i].datetime_start
        lifecycle.finished(worker, entry, trials[i], outcome, inputs[i], start, started)

    try:
        options = worker.run_options(cfg)
        train_group(
            inputs[0][0],
            [params for _, _, params in inputs],
            data,
            options,
            on_epoch=on_epoch,
            should_stop=worker.flags.should_interrupt,
            on_done=on_done,
        )
    except Exception as exc:  # building or training the group failed: every member left
        if lifecycle.machine_fault(exc):
            raise  # the members stay RUNNING: recovery records them interrupted
        traceback.print_exc()
        for i in range(len(trials)):
            if i not in told:
                on_done(i, None, exc)
    finally:
        for beat in heartbeats:
            beat.stop()
