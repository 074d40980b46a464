"""The engine's part in the fleet: its own host record and commands, and every
machine's record folded into `HostsChanged` events for the front-ends.

The engine is a machine like any node: it publishes its record (its local workers,
their running trials, this machine's thermal state) and obeys the commands given to its
host (engine.fleet.control). Every `HOSTS_S` seconds it reads all the records and emits
`HostsChanged` when what a front-end would show changed (a machine joined, changed
state, or became lost), and a log line for each command a machine obeyed, so every
front-end's log says who drained or stopped what, and when.

`command(host, action, workers)` serves the front-ends' `ControlHost` command: its own
host's command is obeyed at once, another's written to the storage for that machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine import protocol as p
from engine.fleet.control import HostControl, host_record
from engine.fleet.host_records import host_views, largest_live_memory, send_command
from engine.storage.queue import Entry
from engine.worker.fit import needs_bigger

if TYPE_CHECKING:
    from engine.process.runner import Engine

HOSTS_S = 5.0  # how often the engine reads every machine's record


class EngineHosts:
    def __init__(
        self, engine: Engine, host: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.host = host
        self.clock = clock
        self.control = HostControl(engine.storage, engine.queue, host, "engine")
        self.running: set[str] = set()
        self.thermal = "unknown"
        self.views: list[dict[str, Any]] = []
        self._shown: object = None
        self._seen_commands: dict[str, int] = {}  # host -> seq of the last command logged
        self._started_ns = time.time_ns()
        self._next_read = 0.0

    # ---------------------------------------------------------------- events in

    def note(self, event: p.Event) -> None:
        """Follow the local workers' trials (call with local worker events only)."""
        if isinstance(event, p.TrialStarted):
            self.running.add(f"{event.experiment}#{event.trial}")
        elif isinstance(event, p.TrialFinished):
            self.running.discard(f"{event.experiment}#{event.trial}")

    def note_thermal(self, state: str) -> None:
        self.thermal = state

    # ---------------------------------------------------------------- periodic

    def tick(self) -> None:
        """Obey a new command for this host, publish our record, fold everyone's."""
        engine = self.engine
        orders = self.control.poll(thermal_hold=engine.thermal_hold)
        if orders is not None:
            engine.log("info", orders.message)
            if engine.local is not None:
                for action in orders.controls:
                    engine.local.broadcast(action)
                if orders.workers is not None and not engine.stopping:
                    engine.n_workers = orders.workers
                    engine.local.scale(orders.workers)
        self.control.publish(self._record())
        if self.clock() >= self._next_read:
            self.refresh()

    def refresh(self) -> None:
        """Read every machine's record; emit what changed."""
        self._next_read = self.clock() + HOSTS_S
        self.views = host_views(self.engine.storage, self.engine.queue)
        for view in self.views:
            command = view.get("command")
            if not isinstance(command, dict):
                continue
            seq = int(command.get("seq", 0))
            # commands obeyed before this engine started are history, not news
            if self._seen_commands.get(view["host"], self._started_ns) < seq:
                if view["host"] != self.host:  # our own are logged when obeyed
                    self.engine.log("info", f"{view['host']} obeyed: {_describe(command)}")
                self._seen_commands[view["host"]] = seq
        shown = [{k: v for k, v in view.items() if k != "seen_s_ago"} for view in self.views]
        if shown != self._shown:
            self._shown = shown
            self.engine.channels.emit(p.HostsChanged(hosts=self.views))

    def leave(self, *, quiet: bool = False) -> None:
        """Our record says we exited (best effort: a lost database ages it to lost).
        `quiet`: the run stops for a fault already reported (disk full), which this
        write would only repeat."""
        try:
            self.control.publish(self._record("exited"), force=True)
        except Exception as error:
            if not quiet:
                self.engine.log("warning", f"could not record this host as exited: {error}")

    # ---------------------------------------------------------------- queries

    def largest_live(self) -> int | None:
        return largest_live_memory(self.views)

    def needs_bigger(self, entry: Entry) -> int:
        return needs_bigger(entry, self.largest_live())

    def command(self, host: str, action: str, workers: int | None) -> str:
        """A front-end's ControlHost: recorded for `host`, obeyed within a second."""
        sent = send_command(self.engine.storage, self.engine.queue, host, action, workers)
        if host == self.host:
            self.control._next_poll = 0.0
            self.tick()
        else:
            self._next_read = 0.0
        return f"{host}: {sent.describe()}"

    def _record(self, state: str | None = None) -> Any:
        engine = self.engine
        local = engine.local
        workers = local.running_count() if local is not None else 0
        stopping = bool(engine.stopping)
        return host_record(
            self.host,
            "engine",
            engine.device or _first_device(engine),
            _memory_limit(),
            workers=workers,
            running=self.running,
            thermal=self.thermal,
            state=state or self.control.state(len(self.running), stopping=stopping),
        )


def _first_device(engine: Engine) -> str:
    experiments = engine.campaign.experiments
    return experiments[0].device if experiments else "cpu"


def _memory_limit() -> int | None:
    from engine.worker.fit import memory_limit_from_env

    try:
        return memory_limit_from_env()
    except Exception:  # checked at start-up; never stop a campaign for a record
        return None


def _describe(command: dict[str, Any]) -> str:
    from engine.fleet.host_records import HostCommand

    return HostCommand.from_dict(command).describe()
