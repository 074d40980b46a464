"""Hosts in storage: each machine's record, and the commands given to it.

Every machine working on a campaign (an engine with its local workers, or a
`hpotui worker` node) publishes a small record about itself in the campaign's meta study
(`hpotui.<campaign>`), under its own attribute `hpotui.host:<name>`, every
`PUBLISH_S` seconds and at once when its state changes. Anyone reading the storage (the
engine, `hpotui hosts`) sees every machine; a record older than the campaign's
heartbeat grace period belongs to a machine that is *lost*.

Commands for a machine (drain, stop now, resume, a worker count) are written by anyone
to that machine's attribute `hpotui.command:<name>`, with who gave them and when, and a
sequence number; the machine obeys each new one (engine.fleet.control) and records the
last one it obeyed in its host record, which is how the log of every front-end shows it.

Rules:
- One writer per attribute: a machine writes only its own record; commands for a host
  are last-writer-wins (a newer command replaces one not yet obeyed).
- `last_seen` is the writer's wall clock (seconds since the epoch): machines sharing a
  campaign must keep their clocks in sync (NTP), as any lost-machine judgement across
  machines requires.
"""

from __future__ import annotations

import getpass
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from optuna.storages import BaseStorage

from engine.errors import UserError
from engine.storage.queue import PREFIX, CampaignQueue

S_HOST = PREFIX + "host:"
S_COMMAND = PREFIX + "command:"
PUBLISH_S = 10.0  # a low rate: one small write per machine every 10 s
ACTIONS = ("drain", "stop", "resume", "workers")
MAX_WORKERS = 256


@dataclass
class HostRecord:
    """What one machine says about itself. `state`: working, idle, draining, drained,
    stopped, exited (front-ends add `lost`). `memory_bytes`: what one trial may use
    there (None: unknown, e.g. a GPU not probed)."""

    host: str
    role: str  # "engine" or "node"
    device: str = ""
    memory_bytes: int | None = None
    workers: int = 0
    running: list[str] = field(default_factory=list)  # "experiment#trial"
    thermal: str = "unknown"
    state: str = "idle"
    last_seen: float = 0.0
    version: str = ""
    pid: int = 0
    command: dict[str, Any] | None = None  # the last command obeyed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> HostRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def status(self, now: float, grace_s: float) -> str:
        """The state a front-end shows: `lost` when not seen for the grace period."""
        if self.state != "exited" and now - self.last_seen > grace_s:
            return "lost"
        return self.state


@dataclass(frozen=True)
class HostCommand:
    action: str  # one of ACTIONS
    by: str  # user@host that gave it
    at: float  # wall clock
    seq: int  # increasing: a machine obeys each seq once
    workers: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> HostCommand:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def describe(self) -> str:
        what = f"workers {self.workers}" if self.action == "workers" else self.action
        return f"{what} (by {self.by} at {time.strftime('%H:%M:%S', time.localtime(self.at))})"


def _meta_id(queue: CampaignQueue, *, create: bool) -> int | None:
    return queue._meta_id(create=create)


def meta_attrs(storage: BaseStorage, queue: CampaignQueue) -> dict[str, Any]:
    sid = _meta_id(queue, create=False)
    return {} if sid is None else dict(storage.get_study_user_attrs(sid))


def publish(storage: BaseStorage, queue: CampaignQueue, record: HostRecord) -> None:
    """Write this machine's record (stamped now)."""
    record.last_seen = time.time()
    sid = _meta_id(queue, create=True)
    assert sid is not None
    storage.set_study_user_attr(sid, S_HOST + record.host, record.to_dict())


def read_records(storage: BaseStorage, queue: CampaignQueue) -> list[HostRecord]:
    """Every machine's record, sorted by host name."""
    out = [
        HostRecord.from_dict(value)
        for key, value in meta_attrs(storage, queue).items()
        if key.startswith(S_HOST) and isinstance(value, dict)
    ]
    return sorted(out, key=lambda r: r.host)


def grace_of(storage: BaseStorage, queue: CampaignQueue) -> float:
    """The campaign's heartbeat grace period (what makes a trial, and a machine, lost)."""
    from engine.worker.heartbeat import HeartbeatSettings, stored_settings

    settings = stored_settings(storage, queue) or HeartbeatSettings()
    return float(settings.grace_s)


def host_views(
    storage: BaseStorage, queue: CampaignQueue, now: float | None = None
) -> list[dict[str, Any]]:
    """Every machine as front-ends show it: its record plus `status` (lost judged) and
    `seen_s_ago`; the form of `HostsChanged` events and `hpotui hosts --json`."""
    now = time.time() if now is None else now
    grace = grace_of(storage, queue)
    views = []
    for record in read_records(storage, queue):
        view = record.to_dict()
        view["status"] = record.status(now, grace)
        view["seen_s_ago"] = round(max(0.0, now - record.last_seen), 1)
        views.append(view)
    return views


def largest_live_memory(views: list[dict[str, Any]]) -> int | None:
    """The most memory one trial may use on a live, working machine (None: unknown)."""
    sizes = [
        int(v["memory_bytes"])
        for v in views
        if v.get("memory_bytes") and v.get("status") not in ("lost", "exited", "stopped")
    ]
    return max(sizes) if sizes else None


def who() -> str:
    from engine.storage.recovery import host_name

    try:
        user = getpass.getuser()
    except Exception:  # no user name in a container: the host says enough
        user = "?"
    return f"{user}@{host_name()}"


def check_command(action: str, workers: int | None) -> None:
    """A UserError for a command a machine could not obey."""
    if action not in ACTIONS:
        raise UserError(f"unknown host command {action!r}; one of {', '.join(ACTIONS)}")
    if action == "workers":
        if not isinstance(workers, int) or isinstance(workers, bool):
            raise UserError("`workers` needs a number of workers, e.g. workers HOST 4")
        if not 1 <= workers <= MAX_WORKERS:
            raise UserError(
                f"workers must be between 1 and {MAX_WORKERS}, got {workers}",
                hint="drain a host to stop it taking trials",
            )


def send_command(
    storage: BaseStorage,
    queue: CampaignQueue,
    host: str,
    action: str,
    workers: int | None = None,
    *,
    by: str | None = None,
) -> HostCommand:
    """Record a command for `host`; it obeys at its next look (about a second)."""
    check_command(action, workers)
    records = {r.host for r in read_records(storage, queue)}
    if host not in records:
        known = ", ".join(sorted(records)) or "none"
        raise UserError(
            f"no host {host!r} in campaign {queue.campaign} (hosts: {known})", where="HOST"
        )
    previous = read_command(storage, queue, host)
    seq = max(time.time_ns(), (previous.seq + 1) if previous else 0)
    command = HostCommand(
        action, by or who(), time.time(), seq, workers if action == "workers" else None
    )
    sid = _meta_id(queue, create=True)
    assert sid is not None
    storage.set_study_user_attr(sid, S_COMMAND + host, command.to_dict())
    return command


def read_command(storage: BaseStorage, queue: CampaignQueue, host: str) -> HostCommand | None:
    raw = meta_attrs(storage, queue).get(S_COMMAND + host)
    return HostCommand.from_dict(raw) if isinstance(raw, dict) else None
