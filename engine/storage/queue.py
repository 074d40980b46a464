"""The campaign queue, kept in the Optuna storage so every worker (and optuna-dashboard)
sees the same campaign.

Layout:
- one study per experiment run, named `<campaign>.<experiment>` (a re-run gets
  `.r2`, `.r3`, ...); its user attributes hold the queue position, the state
  (queued / paused / done / failed / skipped; "running" is derived from its trials),
  the resolved experiment config, the architecture grid and the value-space key.
  A re-run's old study is marked archived and never deleted.
- one meta study `hpotui.<campaign>` whose attributes hold campaign-wide switches
  (`paused_all`).

Trial accounting (what `n_trials` counts): COMPLETE, PRUNED, and FAIL trials recorded as
a genuine failure (`hpotui.counted`). Interrupted trials (engine or worker killed, stop
now) and surplus trials (asked by two workers at once past n_trials) are FAIL but not
counted; interrupted ones are re-enqueued with the same params.
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
from optuna.trial import FrozenTrial, TrialState

from engine.campaign.model import ExperimentConfig
from engine.errors import UserError
from engine.protocol import ExperimentState, ExperimentStatus, QueueSnapshot

PREFIX = "hpotui."
S_CAMPAIGN = PREFIX + "campaign"
S_EXPERIMENT = PREFIX + "experiment"
S_CONFIG = PREFIX + "config"
S_POSITION = PREFIX + "position"
S_STATE = PREFIX + "state"
S_REASON = PREFIX + "reason"
S_ARCHIVED = PREFIX + "archived"
S_GRID = PREFIX + "grid"
S_SPACE_KEY = PREFIX + "space_key"
S_RUN = PREFIX + "run"
S_STARTED = PREFIX + "started"
S_PAUSED_ALL = PREFIX + "paused_all"
S_SPLITS = PREFIX + "splits"  # SplitFacts.to_dict() of the experiment's data
S_WORKERS = PREFIX + "workers"  # the worker count last set with set_workers (+/-)

T_COUNTED = PREFIX + "counted"
T_INTERRUPTED = PREFIX + "interrupted"
T_SURPLUS = PREFIX + "surplus"
T_RETRY_OF = PREFIX + "retry_of"
T_EXTREME = PREFIX + "forced_extreme"
T_REASON = PREFIX + "reason"
T_WORKER = PREFIX + "worker"
T_HOST = PREFIX + "host"
T_PID = PREFIX + "pid"
T_PID_START = PREFIX + "pid_start"
T_DEFERRED = PREFIX + "deferred"  # a trial handed to a worker it fits (engine.worker.fit)
T_NEEDS = PREFIX + "needs_bytes"  # the memory a deferred trial needs

STORED_STATES = ("queued", "paused", "done", "failed", "skipped")
TERMINAL = ("done", "failed", "skipped")


@dataclass
class Counts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0  # counted failures
    running: int = 0
    waiting: int = 0
    interrupted: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    mean_duration_s: float | None = None
    consecutive_failures: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed


def counts_of(trials: list[FrozenTrial]) -> Counts:
    c = Counts()
    durations: list[float] = []
    for t in trials:
        if t.state == TrialState.COMPLETE:
            c.complete += 1
            value = t.value
            better = c.best_value is None or (value is not None and value < c.best_value)
            if value is not None and math.isfinite(value) and better:
                c.best_value, c.best_trial = value, t.number
        elif t.state == TrialState.PRUNED:
            c.pruned += 1
        elif t.state == TrialState.FAIL:
            if t.user_attrs.get(T_COUNTED):
                c.failed += 1
            elif t.user_attrs.get(T_INTERRUPTED):
                c.interrupted += 1
        elif t.state == TrialState.RUNNING:
            c.running += 1
        elif t.state == TrialState.WAITING:
            c.waiting += 1
        if t.datetime_complete and t.datetime_start and is_counted(t):
            durations.append((t.datetime_complete - t.datetime_start).total_seconds())
    if durations:
        c.mean_duration_s = sum(durations) / len(durations)
    finished = sorted(
        (t for t in trials if is_counted(t) and t.datetime_complete), key=lambda t: t.number
    )
    for t in reversed(finished):
        if t.state != TrialState.FAIL:
            break
        if str(t.user_attrs.get(T_REASON, "")).startswith("TrialDoesNotFit"):
            # an architecture too big for this device (pre-flight warned about it) says
            # nothing about the experiment's health: the search goes on with the others
            continue
        c.consecutive_failures += 1
    return c


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def best_trial(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The COMPLETE trial with the lowest value (the objective is minimised)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and _finite(t.value)]
    return min(done, key=lambda t: (t.value, t.number)) if done else None


def is_counted(t: FrozenTrial) -> bool:
    """Does this finished trial count toward n_trials?"""
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return t.state == TrialState.FAIL and bool(t.user_attrs.get(T_COUNTED))


@dataclass
class Entry:
    """One experiment of the queue as read from its study."""

    name: str
    study_name: str
    study_id: int
    position: int
    stored_state: str
    reason: str
    config: ExperimentConfig
    grid: list[dict[str, int]]
    space_key: str
    started: float | None
    splits: dict[str, Any] = field(default_factory=dict)
    trials: list[FrozenTrial] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)

    @property
    def state(self) -> ExperimentState:
        if self.stored_state == "queued" and self.counts.running > 0:
            return "running"
        return self.stored_state  # type: ignore[return-value]

    @property
    def slots_left(self) -> int:
        """How many more trials may be started now (n_trials minus finished and running)."""
        return self.config.n_trials - self.counts.finished - self.counts.running

    @property
    def timed_out(self) -> bool:
        t = self.config.timeout_s
        return t is not None and self.started is not None and time.time() - self.started > t

    def status(self) -> ExperimentStatus:
        c = self.counts
        remaining = max(0, self.config.n_trials - c.finished)
        eta = None
        if c.mean_duration_s is not None and self.state in ("queued", "running", "paused"):
            eta = remaining * c.mean_duration_s / max(1, c.running)  # parallel trials
        return ExperimentStatus(
            name=self.name,
            position=self.position,
            budget=self.config.budget,
            horizon=self.config.horizon,
            task=self.config.task,
            state=self.state,
            n_trials=self.config.n_trials,
            n_complete=c.complete,
            n_pruned=c.pruned,
            n_failed=c.failed,
            n_running=c.running,
            best_value=c.best_value,
            best_trial=c.best_trial,
            eta_s=eta,
            timeout_s=self.config.timeout_s,
            study_name=self.study_name,
            splits=list(self.splits.get("splits", [])),
            split_warnings=list(self.splits.get("drift_warnings", [])),
            objective=self.config.objective,
        )


class CampaignQueue:
    """Reads and changes a campaign's queue in an Optuna storage (any backend)."""

    def __init__(self, storage: BaseStorage, campaign: str) -> None:
        self.storage = storage
        self.campaign = campaign
        self.meta_name = f"{PREFIX}{campaign}"

    # ------------------------------------------------------------------ reading

    def entries(self, *, with_trials: bool = True) -> list[Entry]:
        """The active (not archived) experiments, in queue order."""
        out: list[Entry] = []
        for study in self.storage.get_all_studies():
            attrs = study.user_attrs
            if attrs.get(S_CAMPAIGN) != self.campaign or attrs.get(S_ARCHIVED):
                continue
            if S_EXPERIMENT not in attrs:
                continue
            entry = Entry(
                name=attrs[S_EXPERIMENT],
                study_name=study.study_name,
                study_id=study._study_id,
                position=int(attrs.get(S_POSITION, 0)),
                stored_state=str(attrs.get(S_STATE, "queued")),
                reason=str(attrs.get(S_REASON, "")),
                config=ExperimentConfig.from_dict(attrs[S_CONFIG]),
                grid=list(attrs.get(S_GRID, [])),
                space_key=str(attrs.get(S_SPACE_KEY, "")),
                started=attrs.get(S_STARTED),
                splits=dict(attrs.get(S_SPLITS, {})),
            )
            if with_trials:
                entry.trials = self.storage.get_all_trials(study._study_id, deepcopy=False)
                entry.counts = counts_of(entry.trials)
            out.append(entry)
        out.sort(key=lambda e: (e.position, e.name))
        for i, e in enumerate(out):
            e.position = i
        return out

    def entry(self, name: str) -> Entry:
        for e in self.entries():
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.entries(with_trials=False)) or "none"
        raise UserError(f"no experiment {name!r} in campaign {self.campaign} (known: {known})")

    def paused_all(self) -> bool:
        sid = self._meta_id(create=False)
        if sid is None:
            return False
        return bool(self.storage.get_study_user_attrs(sid).get(S_PAUSED_ALL, False))

    def pick(self, accept: Callable[[Entry], bool] | None = None) -> Entry | None:
        """The first experiment, in queue order, that may start a trial now (and that
        `accept`s, e.g. one with work that fits this worker: engine.worker.fit)."""
        if self.paused_all():
            return None
        for e in self.entries():
            startable = e.stored_state == "queued" and e.slots_left > 0 and not e.timed_out
            if startable and (accept is None or accept(e)):
                return e
        return None

    def all_terminal(self) -> bool:
        return all(e.stored_state in TERMINAL for e in self.entries(with_trials=False))

    def snapshot(
        self,
        workers: int,
        needs_bigger: Callable[[Entry], int] | None = None,
        *,
        entries: list[Entry] | None = None,
    ) -> QueueSnapshot:
        """The queue as front-ends show it; `needs_bigger(entry)` counts its waiting
        trials no live machine can fit (engine.worker.fit); `entries`: as just read (with
        their trials), to read them once."""
        rows = []
        for e in self.entries() if entries is None else entries:
            row = e.status()
            if needs_bigger is not None:
                row.needs_bigger = needs_bigger(e)
            rows.append(row)
        return QueueSnapshot(
            experiments=rows,
            workers=workers,
            paused_all=self.paused_all(),
        )

    # ------------------------------------------------------------------ creating

    def ensure(
        self,
        exp: ExperimentConfig,
        grid: list[dict[str, int]],
        space_key: str,
        extremes: list[dict[str, Any]],
    ) -> tuple[Entry, bool]:
        """The experiment's active study: created (with its forced extremes enqueued) when
        missing, else checked against `space_key` and given the new config. Returns
        (entry, created)."""
        from engine.campaign.search import check_value_space

        for e in self.entries(with_trials=False):
            if e.name == exp.name:
                check_value_space(exp.name, e.space_key or None, space_key)
                if e.config.to_dict() != exp.to_dict():
                    self._set(e.study_id, S_CONFIG, exp.to_dict())
                self._enqueue_extremes(e.study_name, extremes)
                return self.entry(exp.name), False
        position = len(self.entries(with_trials=False))
        self._create(exp, grid, space_key, extremes, position, run=1)
        return self.entry(exp.name), True

    def _create(
        self,
        exp: ExperimentConfig,
        grid: list[dict[str, int]],
        space_key: str,
        extremes: list[dict[str, Any]],
        position: int,
        run: int,
    ) -> None:
        name = f"{self.campaign}.{exp.name}" + (f".r{run}" if run > 1 else "")
        study = optuna.create_study(
            storage=self.storage, study_name=name, direction="minimize", load_if_exists=True
        )
        sid = study._study_id
        # The campaign attribute goes last: a study is part of the queue only once complete.
        for key, value in (
            (S_EXPERIMENT, exp.name),
            (S_CONFIG, exp.to_dict()),
            (S_POSITION, position),
            (S_STATE, "queued"),
            (S_GRID, grid),
            (S_SPACE_KEY, space_key),
            (S_RUN, run),
            (S_CAMPAIGN, self.campaign),
        ):
            self._set(sid, key, value)
        self._enqueue_extremes(name, extremes)

    def _enqueue_extremes(self, study_name: str, extremes: list[dict[str, Any]]) -> None:
        """Enqueue each forced extreme once per study (idempotent across crashes)."""
        if not extremes:
            return
        study = optuna.load_study(study_name=study_name, storage=self.storage)
        done = {
            t.user_attrs.get(T_EXTREME)
            for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(T_EXTREME) is not None and not t.user_attrs.get(T_RETRY_OF)
        }
        for i, params in enumerate(extremes):
            if i not in done:
                study.enqueue_trial(params, user_attrs={T_EXTREME: i})

    # ------------------------------------------------------------------ commands

    def move(self, name: str, *, to: int | None = None, by: int | None = None) -> None:
        entries = self.entries(with_trials=False)
        names = [e.name for e in entries]
        if name not in names:
            self.entry(name)  # raises with the known names
        current = names.index(name)
        if to is None and by is None:
            raise UserError("move needs `to` (a position) or `by` (-1 up, +1 down)")
        target = to if to is not None else current + (by or 0)
        target = max(0, min(len(names) - 1, target))
        names.insert(target, names.pop(current))
        by_name = {e.name: e for e in entries}
        for position, n in enumerate(names):
            self._set(by_name[n].study_id, S_POSITION, position)

    def set_state(self, name: str, state: str, reason: str = "") -> Entry:
        if state not in STORED_STATES:
            raise ValueError(state)
        e = self.entry(name)
        self._put_state(e, state, reason)
        return e

    def _put_state(self, e: Entry, state: str, reason: str = "") -> None:
        self._set(e.study_id, S_STATE, state)
        self._set(e.study_id, S_REASON, reason)
        e.stored_state, e.reason = state, reason

    def pause(self, name: str) -> None:
        e = self.entry(name)
        if e.stored_state in TERMINAL:
            raise UserError(f"{name} is {e.stored_state}; only queued experiments can be paused")
        self.set_state(name, "paused")

    def resume(self, name: str) -> None:
        e = self.entry(name)
        if e.stored_state not in ("paused", "skipped"):  # un-skip: queued with its trials
            raise UserError(f"{name} is {e.state}, not paused or skipped")
        self.set_state(name, "queued")

    def skip(self, name: str) -> None:
        e = self.entry(name)
        if e.stored_state in ("done", "skipped"):
            raise UserError(f"{name} is already {e.stored_state}")
        self.set_state(name, "skipped", "skipped by the user")

    def set_paused_all(self, paused: bool) -> None:
        sid = self._meta_id(create=True)
        assert sid is not None
        self._set(sid, S_PAUSED_ALL, paused)

    def set_workers(self, workers: int) -> None:
        """Store the worker count with the campaign: it survives engine restarts."""
        sid = self._meta_id(create=True)
        assert sid is not None
        self._set(sid, S_WORKERS, int(workers))

    def stored_workers(self) -> int | None:
        sid = self._meta_id(create=False)
        if sid is None:
            return None
        value = self.storage.get_study_user_attrs(sid).get(S_WORKERS)
        return value if isinstance(value, int) and value >= 1 else None

    def rerun(self, name: str, extremes: list[dict[str, Any]]) -> Entry:
        """Archive the experiment's study (kept, never deleted) and queue a fresh one at the
        same position, with the same config, grid and value space."""
        e = self.entry(name)
        if e.counts.running:
            raise UserError(f"{name} has {e.counts.running} running trial(s); pause it first")
        run = 1 + max(
            int(s.user_attrs.get(S_RUN, 1))
            for s in self.storage.get_all_studies()
            if s.user_attrs.get(S_CAMPAIGN) == self.campaign
            and s.user_attrs.get(S_EXPERIMENT) == name
        )
        self._set(e.study_id, S_ARCHIVED, True)
        self._create(e.config, e.grid, e.space_key, extremes, e.position, run)
        self.move(name, to=e.position)
        return self.entry(name)

    def refresh(self) -> list[tuple[Entry, str]]:
        """Apply derived transitions (done when n_trials finished, back to queued when
        n_trials grew, done on timeout, failed after too many consecutive failures).
        Returns (entry, previous state) for each change."""
        changes: list[tuple[Entry, str]] = []
        for e in self.entries():
            before = e.stored_state
            c = e.counts
            if before == "queued" and c.running == 0:
                if c.consecutive_failures >= e.config.max_consecutive_failures:
                    self._put_state(
                        e, "failed", f"{c.consecutive_failures} consecutive failed trials"
                    )
                elif c.finished >= e.config.n_trials:
                    self._put_state(e, "done")
                    self._close_waiting(e)
                elif e.timed_out:
                    self._put_state(e, "done", f"timeout after {e.config.timeout_s:g} s")
                    self._close_waiting(e)
            elif before == "done" and c.finished < e.config.n_trials and not e.reason:
                self._put_state(e, "queued")
            elif before == "done" and c.waiting:
                # a retry enqueued after it became done (a late reaper on another machine)
                self._close_waiting(e)
            if e.stored_state != before:
                changes.append((e, before))
        return changes

    def _close_waiting(self, e: Entry) -> None:
        """A done experiment keeps no WAITING trial (a retry enqueued after its last slot
        was taken): each is closed as surplus (FAIL, not counted, never run)."""
        for t in e.trials:
            if t.state != TrialState.WAITING:
                continue
            self.storage.set_trial_user_attr(t._trial_id, T_SURPLUS, True)
            self.storage.set_trial_user_attr(t._trial_id, T_REASON, "not needed: experiment done")
            # a worker may have just popped it: then its own surplus check drops it
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)

    def mark_started(self, e: Entry) -> None:
        if e.started is None:
            self._set(e.study_id, S_STARTED, time.time())

    # ------------------------------------------------------------------ helpers

    def set_splits(self, name: str, facts: dict[str, Any]) -> None:
        """Store an experiment's split facts with its study (when they changed)."""
        for e in self.entries(with_trials=False):
            if e.name == name and e.splits != facts:
                self._set(e.study_id, S_SPLITS, facts)

    def _set(self, study_id: int, key: str, value: Any) -> None:
        self.storage.set_study_user_attr(study_id, key, value)

    def _meta_id(self, *, create: bool) -> int | None:
        try:
            return self.storage.get_study_id_from_name(self.meta_name)
        except KeyError:
            if not create:
                return None
            study = optuna.create_study(
                storage=self.storage, study_name=self.meta_name, load_if_exists=True
            )
            return int(study._study_id)
