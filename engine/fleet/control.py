"""One machine's side of remote control: obey its commands, publish its record.

Both the engine (for its local workers) and a `hpotui worker` node own one
`HostControl`. Every second it reads this machine's command attribute
(engine.fleet.host_records); a command it has not obeyed yet becomes control lines for
its workers (the `engine.worker.pool` format):

- drain: `hold` (the running trials finish, no new trial starts: within one trial);
- stop: `hold` then `interrupt` (the running trials stop at their next epoch boundary,
  are recorded interrupted and re-run by any machine: within one epoch);
- resume: `release` (unless the thermal policy holds this machine);
- workers N: the machine keeps N workers.

Commands given before the machine started are history, not orders: a restarted node
starts working. Each obeyed command is logged and recorded in the host record.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from optuna.storages import BaseStorage

from engine.fleet.host_records import (
    PUBLISH_S,
    HostCommand,
    HostRecord,
    grace_of,
    publish,
    read_command,
)
from engine.storage.queue import CampaignQueue


@dataclass
class Orders:
    """What a new command asks of this machine."""

    controls: list[str] = field(default_factory=list)  # lines for every worker, in order
    workers: int | None = None  # keep this many workers
    message: str = ""


class HostControl:
    def __init__(
        self,
        storage: BaseStorage,
        queue: CampaignQueue,
        host: str,
        role: str,
        *,
        publish_s: float = PUBLISH_S,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.queue = queue
        self.host = host
        self.role = role
        # a record is rewritten well within the grace after which it counts as lost
        self.publish_s = min(publish_s, grace_of(storage, queue) / 3)
        self.poll_s = poll_s
        self.clock = clock
        self.drained = False
        self.stopped = False
        self.obeyed: HostCommand | None = None
        before = read_command(storage, queue, host)
        self._seq = before.seq if before else 0
        self._next_poll = 0.0
        self._next_publish = 0.0
        self._last: dict[str, object] | None = None

    @property
    def holding(self) -> bool:
        """Drained or stopped: no new trial starts here."""
        return self.drained or self.stopped

    def poll(self, *, thermal_hold: bool = False) -> Orders | None:
        """The orders of a new command for this machine (at most every `poll_s`)."""
        now = self.clock()
        if now < self._next_poll:
            return None
        self._next_poll = now + self.poll_s
        command = read_command(self.storage, self.queue, self.host)
        if command is None or command.seq <= self._seq:
            return None
        self._seq = command.seq
        self.obeyed = command
        self._next_publish = 0.0  # say at once that it was obeyed
        return self.orders(command, thermal_hold=thermal_hold)

    def orders(self, command: HostCommand, *, thermal_hold: bool = False) -> Orders:
        said = f"{self.host}: {command.describe()}"
        if command.action == "drain":
            self.drained = True
            return Orders(["hold"], message=f"{said}: running trials finish, no new ones")
        if command.action == "stop":
            self.stopped = True
            return Orders(["hold", "interrupt"], message=f"{said}: running trials stopped")
        if command.action == "resume":
            self.drained = self.stopped = False
            controls = [] if thermal_hold else ["release"]
            return Orders(controls, message=f"{said}: taking trials again")
        return Orders(workers=command.workers, message=f"{said}")

    def state(self, running: int, *, stopping: bool = False) -> str:
        if stopping:
            return "stopping"
        if self.stopped:
            return "stopped"
        if self.drained:
            return "draining" if running else "drained"
        return "working" if running else "idle"

    def publish(self, record: HostRecord, *, force: bool = False) -> bool:
        """Write `record` when due (every `publish_s`) or when what it says changed."""
        record.command = self.obeyed.to_dict() if self.obeyed else None
        # every publish_s, or at once when the state changes (not for each trial)
        said = {k: v for k, v in record.to_dict().items() if k not in ("last_seen", "running")}
        now = self.clock()
        if not force and now < self._next_publish and said == self._last:
            return False
        publish(self.storage, self.queue, record)
        self._last = said
        self._next_publish = now + self.publish_s
        return True


def machine_memory(device: str, limit_bytes: int | None) -> int | None:
    """What one trial may use on this machine, for its host record: the memory limit,
    else the free RAM of a CPU machine (an accelerator is not probed from here: creating
    a context would take its memory; its workers judge their fit themselves)."""
    if limit_bytes is not None:
        return limit_bytes
    if device != "cpu":
        return None
    import psutil

    return int(psutil.virtual_memory().available)


def host_record(
    host: str,
    role: str,
    device: str,
    memory_limit: int | None,
    *,
    workers: int,
    running: Iterable[str],
    thermal: str,
    state: str,
) -> HostRecord:
    """This machine's record now (`last_seen` is stamped when published)."""
    from engine import __version__

    return HostRecord(
        host=host,
        role=role,
        device=device,
        memory_bytes=machine_memory(device, memory_limit),
        workers=workers,
        running=sorted(running),
        thermal=thermal,
        state=state,
        version=__version__,
        pid=os.getpid(),
    )
