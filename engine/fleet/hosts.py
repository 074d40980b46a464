"""Trials other machines run, as events.

Every trial records the host and process that ran it (`hpotui.host`, `hpotui.pid` user
attributes, set by `engine.worker.trial_loop`). An engine learns about its own workers' trials
from their events; trials that workers on other machines run against the same storage
reach it only through the storage. `TrialWatcher` polls the storage at a modest
interval and turns those trials into the same `TrialStarted` / `TrialFinished` events,
so the TUI and `--batch` show them, with their host, like local ones.

Rules:
- Trials that finished before the first poll are taken as known (the campaign's event
  log already holds what this machine saw); only what changes afterwards is reported.
- Each trial is reported at most once as started and once as finished. Surplus trials
  (asked past n_trials by two workers at once, never run) are not reported.
- The final poll (`poll(final=True)`, the engine's last read before Bye) also reports
  this process's own finished trials whose event never came (`note_reported` was not
  called for them: a worker killed before it could say so).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from optuna.trial import FrozenTrial, TrialState

from engine import protocol as p
from engine.storage.queue import (
    T_EXTREME,
    T_HOST,
    T_INTERRUPTED,
    T_REASON,
    CampaignQueue,
)
from engine.storage.trial_records import trial_state, worker_label

DEFAULT_POLL_S = 5.0


def started_event(experiment: str, t: FrozenTrial) -> p.TrialStarted:
    attrs = t.user_attrs
    return p.TrialStarted(
        experiment=experiment,
        trial=t.number,
        params=dict(t.params),
        architecture=dict(attrs.get("architecture") or {}),
        n_params=int(attrs.get("n_params") or 0),
        worker=worker_label(t),
        host=str(attrs.get(T_HOST, "")),
        forced_extreme=attrs.get(T_EXTREME) is not None,
    )


def finished_event(experiment: str, t: FrozenTrial, state: p.TrialState) -> p.TrialFinished:
    attrs = t.user_attrs
    duration = 0.0
    if t.datetime_start is not None and t.datetime_complete is not None:
        duration = (t.datetime_complete - t.datetime_start).total_seconds()
    metrics = attrs.get("metrics") or {}
    reason = attrs.get(T_REASON) or attrs.get(T_INTERRUPTED) or ""
    return p.TrialFinished(
        experiment=experiment,
        trial=t.number,
        state=state,
        value=t.value if state == "complete" else None,
        duration_s=duration,
        worker=worker_label(t),
        host=str(attrs.get(T_HOST, "")),
        architecture=dict(attrs.get("architecture") or {}),
        n_params=int(attrs.get("n_params") or 0),
        metrics={str(k): float(v) for k, v in dict(metrics).items()},
        reason=str(reason),
    )


class TrialWatcher:
    """Reports, as events, the trials of a campaign that this process did not run.

    `is_local(trial)` says whether a trial is one of ours (its events come from our own
    workers); `note_local(experiment, trial)` marks one as ours when its event arrives
    first. `poll()` returns new events at most every `interval_s` seconds.
    """

    def __init__(
        self,
        queue: CampaignQueue,
        *,
        is_local: Callable[[FrozenTrial], bool],
        interval_s: float = DEFAULT_POLL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.is_local = is_local
        self.interval_s = interval_s
        self.clock = clock
        self._next = 0.0
        self._baseline = True
        self._local: set[tuple[str, int]] = set()
        self._reported: set[tuple[str, int]] = set()  # local trials whose finish was emitted
        self._ours: set[tuple[str, int]] = set()  # (study, number) run by this process
        self._started: set[tuple[str, int]] = set()
        self._finished: set[tuple[str, int]] = set()

    def note_local(self, experiment: str, trial: int) -> None:
        self._local.add((experiment, trial))

    def note_reported(self, experiment: str, trial: int) -> None:
        self._reported.add((experiment, trial))

    def poll(self, *, force: bool = False, final: bool = False) -> list[p.Event]:
        now = self.clock()
        if not force and not final and now < self._next:
            return []
        self._next = now + self.interval_s
        events: list[p.Event] = []
        for entry in self.queue.entries():
            for t in entry.trials:
                events += self._changes(entry.study_name, entry.name, t, final)
        self._baseline = False
        return events

    def _changes(self, study: str, experiment: str, t: FrozenTrial, final: bool) -> list[p.Event]:
        key = (study, t.number)
        if key in self._finished or t.state == TrialState.WAITING:
            return []
        if key in self._ours or (experiment, t.number) in self._local or self.is_local(t):
            self._ours.add(key)  # ours: its worker reports it
            unreported = final and (experiment, t.number) not in self._reported
            state = trial_state(t)
            if not (unreported and t.state.is_finished() and state is not None):
                return []
            self._finished.add(key)  # its worker died before saying it had finished
            return [finished_event(experiment, t, state)]
        state = trial_state(t)
        finished = t.state.is_finished()
        if self._baseline and finished:
            self._finished.add(key)
            return []
        if finished and state is None:  # surplus: never ran
            self._finished.add(key)
            return []
        events: list[p.Event] = []
        if key not in self._started and (finished or "architecture" in t.user_attrs):
            self._started.add(key)
            events.append(started_event(experiment, t))
        if finished and state is not None:
            self._finished.add(key)
            events.append(finished_event(experiment, t, state))
        return events
