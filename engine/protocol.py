"""The contract between the engine and every front-end: JSON lines over pipes.

Rules (docs/protocol.md has one example per message):
- The engine writes only protocol lines to stdout, one JSON object per line; logs go to
  stderr or become `Log` events. Commands arrive on stdin, one JSON object per line.
- Every message has a `type`. The first event is always `Hello`, carrying
  `PROTOCOL_VERSION`; a front-end refuses a different major version.
- Every command carries an `id` chosen by the sender; the engine answers each command
  with exactly one `Reply` quoting that id (ok or not, with a message).
- A line that cannot be decoded never crashes the engine: it becomes an `Error` event.
- Unknown fields are ignored when decoding (newer peers may add fields); missing
  required fields are an error.
- This module imports neither textual nor torch.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

PROTOCOL_VERSION = "1.0"

ExperimentState = Literal["queued", "running", "paused", "done", "failed", "skipped"]
TrialState = Literal["complete", "pruned", "failed", "interrupted"]
ThermalLevel = Literal["ok", "warning", "paused", "critical", "unknown"]
LogLevel = Literal["debug", "info", "warning", "error"]


class ProtocolError(ValueError):
    """A line that is not a valid message."""


@dataclass
class Message:
    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["type"] = self.type
        return data


# ----------------------------------------------------------------------------- events


@dataclass
class Event(Message):
    ts: float = field(default_factory=time.time, kw_only=True)


@dataclass
class Hello(Event):
    """First event of every engine session."""

    type: ClassVar[str] = "hello"
    protocol_version: str
    engine_version: str
    campaign: str
    config_path: str
    storage: str  # credentials masked
    pid: int
    host: str
    workers: int
    resumed: bool = False


@dataclass
class ExperimentStatus:
    """One row of the queue, as the front-end shows it."""

    name: str
    position: int  # 0-based, queue order
    budget: str
    horizon: int
    task: str
    state: ExperimentState
    n_trials: int
    n_complete: int = 0
    n_pruned: int = 0
    n_failed: int = 0
    n_running: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    eta_s: float | None = None
    timeout_s: float | None = None
    study_name: str = ""
    needs_bigger: int = 0  # waiting trials no live machine can fit (engine.worker.fit)
    # split facts (engine.dataset.splits): per split name, size, start, end, label_rate,
    # blocks; empty until the engine has read the experiment's data
    splits: list[dict[str, Any]] = field(default_factory=list)
    split_warnings: list[str] = field(default_factory=list)  # label-rate drift
    # what a trial's value is: "val_bce", or "val_auc" (the value is then 1 - ROC-AUC)
    objective: str = "val_bce"


@dataclass
class QueueSnapshot(Event):
    """The whole queue; sent at start and after every change."""

    type: ClassVar[str] = "queue"
    experiments: list[ExperimentStatus]
    workers: int
    paused_all: bool = False


@dataclass
class ExperimentStarted(Event):
    type: ClassVar[str] = "experiment_started"
    experiment: str


@dataclass
class ExperimentFinished(Event):
    type: ClassVar[str] = "experiment_finished"
    experiment: str
    state: ExperimentState
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass
class TrialStarted(Event):
    type: ClassVar[str] = "trial_started"
    experiment: str
    trial: int  # Optuna trial number within the experiment's study
    params: dict[str, Any]
    architecture: dict[str, int]
    n_params: int
    worker: str
    host: str
    forced_extreme: bool = False


@dataclass
class EpochEnded(Event):
    type: ClassVar[str] = "epoch"
    experiment: str
    trial: int
    epoch: int
    train_loss: float
    val_loss: float
    elapsed_s: float


@dataclass
class TrialFinished(Event):
    type: ClassVar[str] = "trial_finished"
    experiment: str
    trial: int
    state: TrialState
    value: float | None
    duration_s: float
    worker: str
    host: str
    architecture: dict[str, int] = field(default_factory=dict)
    n_params: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""


@dataclass
class TrialRecord:
    """One stored trial as the storage holds it (a row of `ExperimentTrials`).

    `state` is "running" or a `TrialState`; `curve` holds `[epoch, train_loss, val_loss]`
    per reported epoch (train_loss null where the storage has none)."""

    trial: int
    state: str
    value: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    architecture: dict[str, int] = field(default_factory=dict)
    n_params: int = 0
    worker: str = ""
    host: str = ""
    forced_extreme: bool = False
    started_ts: float | None = None
    duration_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    curve: list[list[float | None]] = field(default_factory=list)


@dataclass
class ExperimentTrials(Event):
    """Every stored trial of one experiment (its active study), read from the storage:
    sent after `hello` on start and on attach, one event per experiment, so a front-end
    shows trials from before the engine's last start and other machines' trials."""

    type: ClassVar[str] = "experiment_trials"
    experiment: str
    study_name: str
    trials: list[TrialRecord]

    def to_dict(self) -> dict[str, Any]:
        # dataclasses.asdict deep-copies every curve point: 10x slower on a big study
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["trials"] = [dict(vars(t)) for t in self.trials]
        data["type"] = self.type
        return data


@dataclass
class HardwareSampled(Event):
    """A monitor sample; `sample` is `engine.monitor.sample.HardwareSample.to_dict()`,
    its `power` the power state (on battery, Low Power Mode, the engine's keep-awake
    hold; None = unknown), absent from engines older than it."""

    type: ClassVar[str] = "hardware"
    sample: dict[str, Any]


@dataclass
class ThermalChanged(Event):
    type: ClassVar[str] = "thermal"
    state: ThermalLevel
    previous: ThermalLevel
    reason: str


@dataclass
class LogLine(Event):
    type: ClassVar[str] = "log"
    level: LogLevel
    message: str
    source: str = "engine"


@dataclass
class StorageOutage(Event):
    """The database stopped answering (`reachable` false: sent when it starts and every
    few seconds while calls are retried) or answers again (`reachable` true).
    `waited_s` of `patience_s` so far; past the patience, `source` exits, resumable."""

    type: ClassVar[str] = "storage_outage"
    reachable: bool
    waited_s: float
    patience_s: float
    error: str = ""  # first line of the connection error, password masked
    source: str = "engine"  # engine, a worker id, or a node's host


@dataclass
class ErrorRaised(Event):
    type: ClassVar[str] = "error"
    message: str
    command_id: str | None = None


@dataclass
class Reply(Event):
    """The answer to one command, quoting its id."""

    type: ClassVar[str] = "reply"
    command_id: str
    ok: bool
    message: str = ""


@dataclass
class Bye(Event):
    """Last event: the engine is exiting with `exit_code`."""

    type: ClassVar[str] = "bye"
    reason: str
    exit_code: int


@dataclass
class HostsChanged(Event):
    """Every machine of the campaign as its host record says (engine.fleet.host_records:
    host, role, device, memory_bytes, workers, running, thermal, state, status (state, or
    `lost`), last_seen, seen_s_ago, version, command); sent when one changes."""

    type: ClassVar[str] = "hosts"
    hosts: list[dict[str, Any]]


# --------------------------------------------------------------------------- commands


@dataclass
class Command(Message):
    id: str


@dataclass
class Move(Command):
    """Move an experiment: `to` is a 0-based position, or use `by` (-1 up, +1 down)."""

    type: ClassVar[str] = "move"
    experiment: str
    to: int | None = None
    by: int | None = None


@dataclass
class Pause(Command):
    type: ClassVar[str] = "pause"
    experiment: str


@dataclass
class Resume(Command):
    type: ClassVar[str] = "resume"
    experiment: str


@dataclass
class PauseAll(Command):
    type: ClassVar[str] = "pause_all"


@dataclass
class ResumeAll(Command):
    type: ClassVar[str] = "resume_all"


@dataclass
class Skip(Command):
    type: ClassVar[str] = "skip"
    experiment: str


@dataclass
class Rerun(Command):
    """Start the experiment again in a fresh study; the old study is archived, not deleted."""

    type: ClassVar[str] = "rerun"
    experiment: str


@dataclass
class AddExperiments(Command):
    type: ClassVar[str] = "add"
    config_path: str


@dataclass
class Stop(Command):
    """`after_current`: finish running trials, start no more. `now`: interrupt at the next
    epoch boundary (trials recorded as interrupted and re-run on resume)."""

    type: ClassVar[str] = "stop"
    mode: Literal["after_current", "now"] = "after_current"


@dataclass
class SetWorkers(Command):
    type: ClassVar[str] = "set_workers"
    workers: int


@dataclass
class RequestSnapshot(Command):
    """Ask for a fresh `QueueSnapshot` (e.g. after attaching)."""

    type: ClassVar[str] = "snapshot"


@dataclass
class ControlHost(Command):
    """A command for one machine, through the storage: `drain` (running trials finish,
    no new ones), `stop` (interrupt them now), `resume`, or `workers` (keep `workers`)."""

    type: ClassVar[str] = "control_host"
    host: str
    action: Literal["drain", "stop", "resume", "workers"]
    workers: int | None = None


EVENT_TYPES: tuple[type[Event], ...] = (
    Hello,
    QueueSnapshot,
    ExperimentStarted,
    ExperimentFinished,
    TrialStarted,
    EpochEnded,
    TrialFinished,
    ExperimentTrials,
    HardwareSampled,
    ThermalChanged,
    LogLine,
    StorageOutage,
    ErrorRaised,
    Reply,
    Bye,
    HostsChanged,
)
COMMAND_TYPES: tuple[type[Command], ...] = (
    Move,
    Pause,
    Resume,
    PauseAll,
    ResumeAll,
    Skip,
    Rerun,
    AddExperiments,
    Stop,
    SetWorkers,
    RequestSnapshot,
    ControlHost,
)

EVENTS: dict[str, type[Event]] = {cls.type: cls for cls in EVENT_TYPES}
COMMANDS: dict[str, type[Command]] = {cls.type: cls for cls in COMMAND_TYPES}

M = TypeVar("M")


def encode(message: Message) -> str:
    """One JSON line (no trailing newline). NaN/inf become null: JSON has no such values."""
    return json.dumps(_finite(message.to_dict()), separators=(",", ":"), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _build(cls: type[M], data: dict[str, Any]) -> M:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = data[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ProtocolError(
                f"{getattr(cls, 'type', '') or cls.__name__}: missing field {f.name!r}"
            )
    if cls is QueueSnapshot:
        rows = kwargs.get("experiments")
        if not isinstance(rows, list):
            raise ProtocolError("queue: 'experiments' must be a list")
        kwargs["experiments"] = [_build(ExperimentStatus, _as_dict(r)) for r in rows]
    if cls is ExperimentTrials:
        rows = kwargs.get("trials")
        if not isinstance(rows, list):
            raise ProtocolError("experiment_trials: 'trials' must be a list")
        kwargs["trials"] = [_build(TrialRecord, _as_dict(r)) for r in rows]
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - dataclass signature mismatch
        raise ProtocolError(str(exc)) from exc


def _as_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _parse(line: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    return _as_dict(data)


def decode_event(line: str | bytes) -> Event:
    data = _parse(line)
    cls = EVENTS.get(str(data.get("type")))
    if cls is None:
        raise ProtocolError(f"unknown event type {data.get('type')!r}")
    return _build(cls, data)


def decode_command(line: str | bytes) -> Command:
    data = _parse(line)
    cls = COMMANDS.get(str(data.get("type")))
    if cls is None:
        known = ", ".join(sorted(COMMANDS))
        raise ProtocolError(f"unknown command type {data.get('type')!r} (known: {known})")
    if not isinstance(data.get("id"), str):
        raise ProtocolError(f"{cls.type}: every command needs a string 'id'")
    return _build(cls, data)


def compatible(version: str) -> bool:
    """Same major version as ours."""
    return version.split(".")[0] == PROTOCOL_VERSION.split(".")[0]
