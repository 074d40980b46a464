"""Recovery of trials whose process died: the crash-safety rules in one place.

- A RUNNING trial whose worker is gone (same host, pid dead or reused) is recorded as
  interrupted: FAIL, not counted toward n_trials, and its params are enqueued again
  (once: the retry carries `hpotui.retry_of`).
- A trial of another host is left to its heartbeat (RDB storages: failed once stale, but
  never on an answer that waited out a database outage: `stale_trial_ids`); such a
  FAIL, uncounted and not surplus, is re-enqueued the same way.
- A RUNNING trial without a pid on a journal file was left by a worker killed between
  `ask` and recording its pid: recovery holds the workers' ask lock, so no live worker is
  inside that window while it looks (left RUNNING, such a trial kept its experiment from
  ever being done).
- On a database no lock covers that window, and a trial created just before an outage
  may have no heartbeat either (a worker that gave up on the storage there, or a create
  whose answer the outage swallowed). A live worker spends at most its storage patience
  in that window, so a pid-less RUNNING trial older than the patience plus a margin
  (`pidless_margin_s`: `$HPOTUI_PIDLESS_MARGIN`, default 60 s) is dead.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import socket
from collections.abc import Collection
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from engine.campaign.schema import Invalid, duration
from engine.errors import UserError
from engine.filelock import held
from engine.storage.outage import DEFAULT_PATIENCE_S, guard_of, heartbeats_trusted
from engine.storage.queue import (
    T_COUNTED,
    T_EXTREME,
    T_HOST,
    T_INTERRUPTED,
    T_PID,
    T_PID_START,
    T_RETRY_OF,
    T_SURPLUS,
    CampaignQueue,
    Entry,
)

HOST_ENV = "HPOTUI_HOST"


def host_name() -> str:
    """This machine's name as recorded with its trials: `$HPOTUI_HOST`, else the hostname.

    Set HPOTUI_HOST when two machines share a hostname (containers, cloned VMs).
    """
    return os.environ.get(HOST_ENV, "").strip() or socket.gethostname()


HOST = host_name()
PIDLESS_MARGIN_ENV = "HPOTUI_PIDLESS_MARGIN"
DEFAULT_PIDLESS_MARGIN_S = 60.0


def pidless_margin_s() -> float:
    """How long past the storage patience a pid-less RUNNING trial on a database is taken
    for dead: `$HPOTUI_PIDLESS_MARGIN` (seconds, or "90s", "2m"), else 60 s. A shorter
    one only suits machines where no worker is ever that slow (the tests use it)."""
    raw = os.environ.get(PIDLESS_MARGIN_ENV, "").strip()
    if not raw:
        return DEFAULT_PIDLESS_MARGIN_S
    try:
        return float(raw) if re.fullmatch(r"\d+(\.\d+)?", raw) else duration(raw)
    except Invalid as error:
        raise UserError(str(error), where=f"${PIDLESS_MARGIN_ENV}") from None


def process_start(pid: int) -> float | None:
    """When process `pid` started; None when there is none, or only its zombie (a killed
    worker stays one until something reaps it: in a container whose init is slow to,
    for seconds, and taking it for alive left its trial RUNNING for good)."""
    try:
        import psutil

        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except Exception:
        return None


def pid_alive(pid: int, start: float | None) -> bool:
    """Is the process that wrote these attributes still running (pid reuse checked)?"""
    now = process_start(pid)
    if now is None:
        return False
    return start is None or abs(now - start) < 1.0


def trial_params(t: FrozenTrial) -> dict[str, Any]:
    """Every value the trial was (or was to be) run with, enqueued ones included."""
    fixed = t.system_attrs.get("fixed_params", {})
    return {**(fixed if isinstance(fixed, dict) else {}), **t.params}


def enqueue_retry(storage: BaseStorage, study_name: str, t: FrozenTrial) -> bool:
    """Enqueue the params of interrupted trial `t` again, once. True if enqueued."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    for other in study.get_trials(deepcopy=False):
        if other.user_attrs.get(T_RETRY_OF) == t.number:
            return False
    attrs: dict[str, Any] = {T_RETRY_OF: t.number}
    if t.user_attrs.get(T_EXTREME) is not None:
        attrs[T_EXTREME] = t.user_attrs[T_EXTREME]
    study.enqueue_trial(trial_params(t), user_attrs=attrs)
    return True


def interrupt_trial(storage: BaseStorage, entry: Entry, t: FrozenTrial, reason: str) -> None:
    """Record a RUNNING trial as interrupted (FAIL, not counted) and re-enqueue it."""
    storage.set_trial_user_attr(t._trial_id, T_INTERRUPTED, reason)
    with contextlib.suppress(UpdateFinishedTrialError):  # already finished by someone else
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    enqueue_retry(storage, entry.study_name, t)


def needs_retry(t: FrozenTrial) -> bool:
    """An uncounted FAIL that is not surplus: interrupted, or failed by a stale heartbeat."""
    return (
        t.state == TrialState.FAIL
        and not t.user_attrs.get(T_COUNTED)
        and not t.user_attrs.get(T_SURPLUS)
    )


def recover(queue: CampaignQueue, *, ask_lock: str | None, live_pids: Collection[int] = ()) -> int:
    """Apply the rules above to every active experiment; the number of trials recovered.

    `ask_lock`: on a journal file, the lock local workers hold from `ask` until their
    trial records its pid. It is held for the whole scan, so a RUNNING trial without a pid
    is one whose worker died inside that window. None on a database, where other
    machines' workers do not take it and Optuna's heartbeat judges their trials.
    """
    if ask_lock is None:
        return _recover(queue, journal=False, live_pids=live_pids)
    with held(ask_lock):
        return _recover(queue, journal=True, live_pids=live_pids)


def stale_trial_ids(storage: BaseStorage, study_id: int) -> list[int]:
    """The study's RUNNING trials whose heartbeat is older than the grace period (what
    `optuna.storages.fail_stale_trials` fails), or none while heartbeats say nothing of
    the workers: during a database outage, for a grace after it, and when this very query
    waited one out (its answer then holds every live worker's trial)."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return []
    if not heartbeats_trusted(storage):
        return []
    found = list(storage._get_stale_trial_ids(study_id))
    return found if heartbeats_trusted(storage) else []


def _recover(queue: CampaignQueue, *, journal: bool, live_pids: Collection[int]) -> int:
    """On a journal (ask lock held) a pid-less RUNNING trial is dead; on a database the
    heartbeat first fails stale trials."""
    n = 0
    margin = pidless_margin_s()  # read on every pass: a bad value stops the engine's start
    for entry in queue.entries(with_trials=False):
        if journal or entry.stored_state in ("done", "skipped", "failed"):
            continue
        for trial_id in stale_trial_ids(queue.storage, entry.study_id):
            with contextlib.suppress(UpdateFinishedTrialError):  # failed elsewhere first
                queue.storage.set_trial_state_values(trial_id, TrialState.FAIL)
    for entry in queue.entries():
        if entry.stored_state in ("done", "skipped", "failed"):
            continue
        for t in entry.trials:
            pidless_dead = journal or _pidless_too_long(t, queue.storage, margin)
            if t.state == TrialState.RUNNING and _is_dead(t, pidless_dead, live_pids):
                interrupt_trial(queue.storage, entry, t, "worker died")
                n += 1
            elif needs_retry(t) and enqueue_retry(queue.storage, entry.study_name, t):
                n += 1
    return n


def _pidless_too_long(t: FrozenTrial, storage: BaseStorage, margin_s: float) -> bool:
    """On a database: has this trial been without a pid for longer than any live worker
    can be (its storage patience plus `margin_s`)?"""
    if t.datetime_start is None:
        return False
    guard = guard_of(storage)
    limit = (guard.patience_s if guard is not None else DEFAULT_PATIENCE_S) + margin_s
    return (datetime.datetime.now() - t.datetime_start).total_seconds() > limit


def _is_dead(t: FrozenTrial, pidless_dead: bool, live_pids: Collection[int]) -> bool:
    if t.user_attrs.get(T_HOST, HOST) != HOST:
        return False  # another machine's worker: its heartbeat decides
    pid: Any = t.user_attrs.get(T_PID)
    if pid is None:
        return pidless_dead
    if int(pid) in live_pids:
        return False
    return not pid_alive(int(pid), t.user_attrs.get(T_PID_START))
