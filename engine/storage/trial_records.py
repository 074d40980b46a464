"""A campaign's stored trials as protocol events: what a front-end needs to draw the whole
campaign, read from the Optuna storage (the source of truth), not from the events it saw.

The engine sends one `ExperimentTrials` per experiment after `hello` on start and on
attach, so every panel shows trials from before the engine's last start, trials of other
machines, and trials failed or interrupted while nobody watched, exactly as stored.

Rules:
- Every trial that ran or runs is sent with its stored state: RUNNING as "running"
  (also a trial whose worker died and whose heartbeat lapsed, until it is reaped),
  finished ones as `engine.fleet.hosts.trial_state` names them. WAITING trials (queued,
  not started) and surplus trials (asked past n_trials, never run) are not sent.
- `curve` is the validation loss reported per epoch (the trial's intermediate values),
  with the train loss of the same epoch from the `train_losses` user attribute that the
  worker stores before it tells the trial's result (null where none was stored).
"""

from __future__ import annotations

import math
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from engine import protocol as p
from engine.storage.queue import (
    T_COUNTED,
    T_DEFERRED,
    T_EXTREME,
    T_HOST,
    T_INTERRUPTED,
    T_REASON,
    T_SURPLUS,
    T_WORKER,
    CampaignQueue,
    Entry,
)
from engine.storage.recovery import HOST


def trial_state(t: FrozenTrial) -> p.TrialState | None:
    """The protocol state of a finished trial (None: not finished, or surplus)."""
    if t.state == TrialState.COMPLETE:
        return "complete"
    if t.state == TrialState.PRUNED:
        return "pruned"
    if t.state == TrialState.FAIL:
        if t.user_attrs.get(T_SURPLUS) or t.user_attrs.get(T_DEFERRED):
            return None  # never ran: surplus, or handed to a worker it fits
        return "failed" if t.user_attrs.get(T_COUNTED) else "interrupted"
    return None


def worker_label(t: FrozenTrial) -> str:
    """The trial's worker, with its host unless the worker id names it already
    (`w1@machine-b`), so a front-end's worker column tells machines apart."""
    worker = str(t.user_attrs.get(T_WORKER, "?"))
    host = str(t.user_attrs.get(T_HOST, ""))
    return worker if not host or host in worker else f"{worker}@{host}"


TRAIN_LOSSES = "train_losses"  # trial user attribute: [[epoch, train loss], ...]


def trial_record(t: FrozenTrial) -> p.TrialRecord | None:
    """The stored trial as a protocol row, or None for one that never ran."""
    if t.state == TrialState.RUNNING:
        state: str = "running"
    elif t.state == TrialState.WAITING:
        return None
    else:
        finished = trial_state(t)
        if finished is None:
            return None
        state = finished
    attrs = t.user_attrs
    started = t.datetime_start.timestamp() if t.datetime_start is not None else None
    duration = None
    if t.datetime_start is not None and t.datetime_complete is not None:
        duration = (t.datetime_complete - t.datetime_start).total_seconds()
    return p.TrialRecord(
        trial=t.number,
        state=state,
        value=t.value if state == "complete" else None,
        params=dict(t.params),
        architecture=dict(attrs.get("architecture") or {}),
        n_params=int(attrs.get("n_params") or 0),
        worker=_worker(t),
        host=str(attrs.get(T_HOST, "")),
        forced_extreme=attrs.get(T_EXTREME) is not None,
        started_ts=started,
        duration_s=duration,
        metrics={str(k): float(v) for k, v in dict(attrs.get("metrics") or {}).items()},
        reason=str(attrs.get(T_REASON) or attrs.get(T_INTERRUPTED) or ""),
        curve=_curve(t.intermediate_values, attrs.get(TRAIN_LOSSES)),
    )


def _worker(t: FrozenTrial) -> str:
    """As the trial's own events name it: this machine's workers by id (`w1`), other
    machines' with their host (`w1@machine-b`, as `TrialWatcher` reports them)."""
    if T_WORKER not in t.user_attrs:
        return ""
    if t.user_attrs.get(T_HOST) == HOST:
        return str(t.user_attrs[T_WORKER])
    return worker_label(t)


def _curve(val: dict[int, float], train: Any) -> list[list[float | None]]:
    trains: dict[int, float] = {}
    for pair in train if isinstance(train, list) else []:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            epoch, loss = pair
            if isinstance(loss, int | float) and math.isfinite(loss):
                trains[int(epoch)] = float(loss)
    return [[float(epoch), trains.get(epoch), float(val[epoch])] for epoch in sorted(val)]


def experiment_trials(entry: Entry) -> p.ExperimentTrials:
    records = [r for r in map(trial_record, entry.trials) if r is not None]
    return p.ExperimentTrials(experiment=entry.name, study_name=entry.study_name, trials=records)


def campaign_trials(queue: CampaignQueue) -> list[p.ExperimentTrials]:
    """One event per active experiment, in queue order."""
    return [experiment_trials(e) for e in queue.entries()]
