"""The dashboard's model of a campaign, built by folding engine events; no UI imports.

`CampaignState.apply(event)` updates the model and returns the *topics* that changed
("queue", "trials", "curves", "hardware", "log", "status", "hosts"). The app folds every event as
soon as it arrives but redraws only the panels whose topics changed, on a short timer, so
a fast event stream costs one redraw per tick rather than one per event.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from engine.protocol import (
    Bye,
    EpochEnded,
    ErrorRaised,
    Event,
    ExperimentFinished,
    ExperimentStarted,
    ExperimentStatus,
    ExperimentTrials,
    HardwareSampled,
    Hello,
    HostsChanged,
    LogLine,
    QueueSnapshot,
    Reply,
    StorageOutage,
    ThermalChanged,
    TrialFinished,
    TrialStarted,
)
from hpotui.progress import Progress, campaign_progress, concurrency
from hpotui.trial import Trial, finite, from_record

LOG_LEVELS = ("debug", "info", "warning", "error")
HISTORY_SAMPLES = 60  # hardware samples kept (1 Hz: one minute)
LOG_LINES = 2000
ERRORS_KEPT = 200  # the crash screen shows the last few
TOPICS = ("queue", "trials", "curves", "hardware", "log", "status", "hosts")


@dataclass(frozen=True)
class LogEntry:
    seq: int
    ts: float
    level: str
    message: str
    source: str


@dataclass
class HardwareView:
    """The last hardware sample plus short histories for sparklines."""

    last: dict[str, Any] | None = None
    cpu_history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_SAMPLES))
    core_history: list[deque[float]] = field(default_factory=list)
    temp_history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_SAMPLES))


class CampaignState:
    """Everything the dashboard shows, derived only from events."""

    def __init__(self) -> None:
        self.hello: Hello | None = None
        self.queue: list[ExperimentStatus] = []
        self.workers: int = 0
        self.paused_all = False
        self.trials: dict[str, dict[int, Trial]] = {}
        self.hardware = HardwareView()
        self.thermal: str = "unknown"
        self.thermal_reason: str = ""
        self.outages: dict[str, StorageOutage] = {}  # source -> its ongoing storage outage
        self.log: deque[LogEntry] = deque(maxlen=LOG_LINES)
        self.replies: dict[str, Reply] = {}
        self.bye: Bye | None = None
        # error events since the engine's last Hello (the last ERRORS_KEPT)
        self.errors: deque[str] = deque(maxlen=ERRORS_KEPT)
        self.hosts: list[dict[str, Any]] = []  # every machine (engine.fleet.host_records)
        self.campaign = ""  # the campaign's name before any Hello (a view from storage)
        self.studies: dict[str, str] = {}  # experiment -> the study its trials are from
        self.pinned: dict[str, int] = {}  # experiment -> trial whose curves were asked for
        self.n_events = 0
        self.last_ts = 0.0
        self._log_seq = 0

    # ------------------------------------------------------------------ folding

    def apply(self, event: Event) -> set[str]:
        """Fold one event into the state; return the topics that changed."""
        self.n_events += 1
        self.last_ts = max(self.last_ts, event.ts)
        changed = {"status"}
        if isinstance(event, HardwareSampled):
            self._hardware(event)
            changed.add("hardware")
        elif isinstance(event, EpochEnded):
            trial = self._trial(event.experiment, event.trial, event.ts)
            trial.epochs.append((event.epoch, event.train_loss, event.val_loss))
            trial.updated_ts = event.ts
            changed.add("curves")
        elif isinstance(event, QueueSnapshot):
            self.queue = sorted(event.experiments, key=lambda e: e.position)
            self.workers = event.workers
            self.paused_all = event.paused_all
            changed.add("queue")
            if self._archived(event):
                changed |= {"trials", "curves"}
        elif isinstance(event, TrialStarted):
            trial = self._trial(event.experiment, event.trial, event.ts)
            trial.state = "running"
            trial.params = dict(event.params)
            trial.architecture = dict(event.architecture)
            trial.n_params = event.n_params
            trial.worker, trial.host = event.worker, event.host
            trial.forced_extreme = event.forced_extreme
            trial.started_ts = trial.updated_ts = event.ts
            trial.epochs = []
            changed |= {"trials", "curves"}
        elif isinstance(event, TrialFinished):
            self._trial_finished(event)
            changed |= {"trials", "curves", "queue"}
        elif isinstance(event, LogLine):
            self.add_log(event.ts, event.level, event.message, event.source)
            changed.add("log")
        elif isinstance(event, ExperimentTrials):
            self._stored_trials(event)
            changed |= {"trials", "curves", "queue"}
        else:
            changed |= self._rare(event)
        return changed

    def _rare(self, event: Event) -> set[str]:
        if isinstance(event, Hello):
            self.hello = event
            self.errors.clear()
            self.workers = event.workers
            resumed = " (resumed from storage)" if event.resumed else ""
            message = f"engine pid {event.pid} on {event.host}: campaign {event.campaign}{resumed}"
            self.add_log(event.ts, "info", message, "hpotui")
            return {"log"}
        if isinstance(event, Reply):
            self.replies[event.command_id] = event
            if not event.ok:
                self.add_log(event.ts, "warning", f"command refused: {event.message}", "hpotui")
                return {"log"}
            return set()
        if isinstance(event, ErrorRaised):
            self.errors.append(event.message)
            self.add_log(event.ts, "error", event.message, "engine")
            return {"log"}
        if isinstance(event, StorageOutage):
            if event.reachable:
                self.outages.pop(event.source, None)
            else:
                self.outages[event.source] = event
            first = event.reachable or event.waited_s == 0
            if first:  # the log says when it started and ended, the status bar meanwhile
                level = "info" if event.reachable else "warning"
                self.add_log(event.ts, level, outage_line(event), event.source)
            return {"log"} if first else set()
        if isinstance(event, ThermalChanged):
            self.thermal, self.thermal_reason = event.state, event.reason
            level = "info" if event.state == "ok" else "warning"
            self.add_log(event.ts, level, f"thermal {event.state}: {event.reason}", "monitor")
            return {"hardware", "log"}
        if isinstance(event, ExperimentStarted):
            self.add_log(event.ts, "info", f"{event.experiment} started", "engine")
            return {"log"}
        if isinstance(event, ExperimentFinished):
            best = "" if event.best_value is None else f", best {event.best_value:.4f}"
            why = f" ({event.reason})" if event.reason else ""
            self.add_log(event.ts, "info", f"{event.experiment} {event.state}{best}{why}", "engine")
            return {"log"}
        if isinstance(event, HostsChanged):
            self.hosts = sorted(event.hosts, key=lambda h: str(h.get("host", "")))
            return {"hosts"}
        if isinstance(event, Bye):
            self.bye = event
            self.add_log(
                event.ts, "info", f"engine exited ({event.exit_code}): {event.reason}", "engine"
            )
            return {"log"}
        return set()

    def outage_status(self) -> str:
        """ "storage unreachable, retrying (1m12s)" while an outage lasts, else ""."""
        if not self.outages:
            return ""
        longest = max(self.outages.values(), key=lambda e: e.waited_s)
        return f"storage unreachable, retrying ({clock(longest.waited_s)})"

    def _trial(self, experiment: str, number: int, ts: float) -> Trial:
        trials = self.trials.setdefault(experiment, {})
        trial = trials.get(number)
        if trial is None:
            trial = trials[number] = Trial(experiment, number, started_ts=ts)
        return trial

    def _trial_finished(self, event: TrialFinished) -> None:
        trial = self._trial(event.experiment, event.trial, event.ts)
        trial.state = event.state
        trial.value = finite(event.value)
        trial.duration_s = event.duration_s
        trial.worker, trial.host = event.worker or trial.worker, event.host or trial.host
        if event.architecture:
            trial.architecture = dict(event.architecture)
        if event.n_params:
            trial.n_params = event.n_params
        trial.metrics = dict(event.metrics)
        trial.reason = event.reason
        trial.updated_ts = event.ts
        if event.state == "failed":
            why = f": {event.reason}" if event.reason else ""
            self.add_log(
                event.ts, "warning", f"{event.experiment} trial {event.trial} failed{why}", "engine"
            )

    def _stored_trials(self, event: ExperimentTrials) -> None:
        """Replace an experiment's trials by what the storage holds. A running trial
        keeps the epochs this front-end saw live when it saw more (the storage keeps a
        running trial's train losses only once it ends)."""
        old = self.trials.get(event.experiment, {})
        fresh: dict[int, Trial] = {}
        for record in event.trials:
            trial = from_record(event.experiment, record)
            seen = old.get(record.trial)
            if (
                seen is not None
                and trial.state == "running"
                and len(seen.epochs) >= len(trial.epochs)
            ):
                trial.epochs = seen.epochs
                trial.updated_ts = max(trial.updated_ts, seen.updated_ts)
            fresh[record.trial] = trial
        self.trials[event.experiment] = fresh
        if event.study_name:
            self.studies[event.experiment] = event.study_name
        if self.pinned.get(event.experiment) not in fresh:
            self.pinned.pop(event.experiment, None)

    def _archived(self, event: QueueSnapshot) -> bool:
        """Drop the trials of experiments whose study changed (a re-run archived the
        old one: its trials, and its best, are no longer the experiment's)."""
        dropped = False
        for row in event.experiments:
            known = self.studies.get(row.name)
            if row.study_name and known and known != row.study_name:
                self.trials.pop(row.name, None)
                self.pinned.pop(row.name, None)
                dropped = True
            if row.study_name:
                self.studies[row.name] = row.study_name
        return dropped

    def _hardware(self, event: HardwareSampled) -> None:
        sample = event.sample
        hw = self.hardware
        hw.last = sample
        cores = [float(c) for c in sample.get("cpu_percent_per_core") or []]
        if cores:
            hw.cpu_history.append(sum(cores) / len(cores))
        if len(hw.core_history) != len(cores):
            hw.core_history = [deque(maxlen=HISTORY_SAMPLES) for _ in cores]
        for history, value in zip(hw.core_history, cores, strict=True):
            history.append(value)
        temp = reading(sample.get("temperature_max_c"))
        if temp is not None:
            hw.temp_history.append(temp)

    def add_log(self, ts: float, level: str, message: str, source: str) -> None:
        """A log line from the front-end itself (link trouble, refused commands)."""
        self._log_seq += 1
        self.log.append(LogEntry(self._log_seq, ts, level, message, source))

    # ------------------------------------------------------------------ queries

    def experiment(self, name: str | None) -> ExperimentStatus | None:
        return next((e for e in self.queue if e.name == name), None)

    def trials_of(self, experiment: str | None) -> list[Trial]:
        if experiment is None:
            return []
        return sorted(self.trials.get(experiment, {}).values(), key=lambda t: t.number)

    def best_trial(self, experiment: str) -> Trial | None:
        done = [t for t in self.trials.get(experiment, {}).values() if t.state == "complete"]
        done = [t for t in done if t.value is not None]
        return min(done, key=lambda t: (t.value or 0.0, t.number)) if done else None

    def top_trials(self, experiment: str | None, n: int = 5) -> list[Trial]:
        done = [
            t for t in self.trials_of(experiment) if t.state == "complete" and t.value is not None
        ]
        return sorted(done, key=lambda t: (t.value or 0.0, t.number))[:n]

    def progress(self) -> Progress:
        """Campaign-wide trials counted / to count and the ETA (hpotui.progress)."""
        durations = {
            name: [
                t.duration_s
                for t in trials.values()
                if t.state in ("complete", "pruned", "failed") and t.duration_s is not None
            ]
            for name, trials in self.trials.items()
        }
        intervals = [
            (t.started_ts, None if t.duration_s is None else t.started_ts + t.duration_s)
            for trials in self.trials.values()
            for t in trials.values()
            if t.started_ts and (t.state == "running" or t.duration_s is not None)
        ]
        return campaign_progress(self.queue, durations, concurrency(intervals))

    def running_trials(self) -> list[Trial]:
        return [t for ts in self.trials.values() for t in ts.values() if t.state == "running"]

    def focus_trial(self, experiment: str | None) -> Trial | None:
        """The trial of the selected experiment whose curves the loss panel shows: the
        one opened from the trial table, else its most recently active running trial,
        else its best, else its latest trial with a curve."""
        trials = self.trials.get(experiment or "", {})
        pinned = trials.get(self.pinned.get(experiment or "", -1))
        if pinned is not None:
            return pinned
        running = [t for t in trials.values() if t.state == "running"]
        if running:
            return max(running, key=lambda t: (t.updated_ts, t.number))
        best = self.best_trial(experiment or "")
        if best is not None and best.epochs:
            return best
        with_curve = [t for t in trials.values() if t.epochs]
        return max(with_curve, key=lambda t: (t.updated_ts, t.number), default=None)

    def running_groups(self) -> tuple[int, list[int]]:
        """(workers with a running trial, their group sizes largest first): a worker
        that trains a fused group runs several trials at once."""
        per_worker: dict[tuple[str, str], int] = {}
        for t in self.running_trials():
            key = (t.host, t.worker or f"?{t.number}")
            per_worker[key] = per_worker.get(key, 0) + 1
        return len(per_worker), sorted(per_worker.values(), reverse=True)

    def log_since(self, seq: int, min_level: str = "debug") -> list[LogEntry]:
        floor = LOG_LEVELS.index(min_level)
        return [e for e in self.log if e.seq > seq and LOG_LEVELS.index(_level(e.level)) >= floor]


def reading(value: Any) -> float | None:
    """The number of a serialized `Reading` ({value, unavailable}), or None."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return finite(float(value))
    return None


def _level(level: str) -> str:
    return level if level in LOG_LEVELS else "info"


def clock(seconds: float) -> str:
    """72.4 -> "1m12s"; 5 -> "5s"."""
    s = int(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def outage_line(e: StorageOutage) -> str:
    """One line for a `StorageOutage` event (batch output, the log panel, `hpotui worker`)."""
    if e.reachable:
        return f"storage reachable again after {clock(e.waited_s)} ({e.source})"
    return (
        f"storage unreachable, retrying ({clock(e.waited_s)} of {clock(e.patience_s)}, "
        f"{e.source}): {e.error}"
    )
