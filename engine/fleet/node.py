"""A worker node: this machine's workers joining a campaign in a shared storage.

`hpotui worker` runs one `WorkerNode`. There is no engine on such a machine: the
campaign's state (queue order, pause, skip, re-run, n_trials) is in the storage, and
each worker reads it before every trial, so a command given on any machine (the TUI's
engine writes it to the storage) reaches every node at its workers' next trial.

The node
- (`engine.fleet.setup`) creates the campaign's studies when it is given the config
  and they do not exist yet (under a lock in the database, so two machines cannot
  both create them);
- checks that this machine's datasets are the campaign's (`engine.fleet.datacheck`);
- runs N worker processes (`engine.fleet.node_worker`), restarting one that crashes while
  work remains, and interrupts (re-enqueues) the trial of one that died;
- every second: fails and re-enqueues the trials of dead workers on any machine
  (`engine.worker.heartbeat.Reaper`) and applies the queue's derived transitions (done after
  n_trials), which on a machine with an engine the engine does;
- applies the campaign's thermal and memory policy to this machine
  (`engine.fleet.monitor`): hold new trials, interrupt running ones when critical;
- exits when every experiment is done/failed/skipped and its workers have left, or on
  SIGINT (finish running trials) / a second SIGINT or SIGTERM (interrupt them).

Rules: the storage URL reaches the workers through the environment, and everything they
write to stderr passes through `Scrubber` before the log file, so the password of the
URL appears in no file and no output. A database outage is waited out inside the storage
the node is given (`engine.storage.outage.open_guarded`) and in its workers', with the
same patience; past it `StorageUnreachable` ends the node (exit 75, resumable).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue as queue_module
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from optuna.storages import BaseStorage
from optuna.trial import TrialState

from engine import protocol as p
from engine.env_faults import EXIT_ENVIRONMENT
from engine.errors import UserError
from engine.fleet.control import HostControl, host_record
from engine.fleet.datacheck import check_same_data
from engine.fleet.host_records import PUBLISH_S, HostRecord
from engine.fleet.monitor import NodeMonitor, monitor_spec
from engine.fleet.node_worker import node_salt
from engine.fleet.setup import Scrubber, campaigns_in
from engine.storage.backend import STORAGE_ENV, mask_url
from engine.storage.queue import T_HOST, T_PID, CampaignQueue
from engine.storage.recovery import host_name
from engine.worker.heartbeat import (
    Reaper,
    campaign_lock,
    use_campaign_heartbeat,
)
from engine.worker.pool import pump_events

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
MAX_RESTARTS = 3  # per worker slot: a worker that keeps crashing is a bug, not bad luck
SLOW_CHECK_S = 10.0  # orphaned retries, datasets of experiments added later


@dataclass
class _Child:
    slot: int
    worker_id: str
    process: subprocess.Popen[bytes]
    restarts: int = 0
    stopping: bool = False
    reader: threading.Thread | None = None  # its event lines


@dataclass
class NodeOptions:
    workers: int = 1
    threads: int | None = None
    device: str | None = None
    monitor: bool = True  # thermal and memory policy on this machine
    poll_s: float = 1.0  # dead-worker check (cheap)
    refresh_s: float = 2.0  # queue transitions (reads every trial)
    log_path: Path | None = None
    python: list[str] = field(default_factory=lambda: [sys.executable])
    storage_patience_s: float | None = None  # None: the workers' default (5 min)
    memory_limit: int | None = None  # bytes one trial may use (engine.worker.fit)
    publish_s: float = PUBLISH_S  # host record (engine.fleet.host_records)


class WorkerNode:
    """Runs this machine's workers on a campaign; see the module docstring."""

    def __init__(
        self,
        storage: BaseStorage,
        url: str,
        campaign: str,
        *,
        on_event: Callable[[p.Event], None],
        options: NodeOptions | None = None,
    ) -> None:
        self.storage = storage
        self.url = url
        self.campaign = campaign
        self.on_event = on_event
        self.options = options or NodeOptions()
        self.queue = CampaignQueue(storage, campaign)
        self.scrub = Scrubber(url)
        self.host = host_name()
        self.children: list[_Child] = []
        self.events: queue_module.Queue[p.Event] = queue_module.Queue()
        self.actions: queue_module.Queue[str] = queue_module.Queue()  # from the monitor
        self.monitor: NodeMonitor | None = None
        self.stopping: str | None = None
        self._log_lock = threading.Lock()
        self._log: IO[str] | None = None
        self._checked: dict[str, str] = {}
        self._reaper = Reaper(storage, self.queue)
        self._next_slow = time.monotonic() + SLOW_CHECK_S
        self._next_refresh = 0.0
        self._readers: list[threading.Thread] = []
        self.control = HostControl(
            storage, self.queue, self.host, "node", publish_s=self.options.publish_s
        )
        self.target = self.options.workers
        self.running: set[str] = set()  # "experiment#trial" run by our workers
        self.thermal = "unknown"
        self.faults: dict[str, str] = {}  # worker id -> the line of its environment fault
        self.fault: str | None = None  # the one this node stops with (exit 3)

    # ---------------------------------------------------------------- running

    def prepare(self) -> list[str]:
        """Checks before any worker starts: the campaign exists and our data is its data."""
        if not self.queue.entries(with_trials=False):
            known = ", ".join(campaigns_in(self.storage)) or "none"
            raise UserError(
                f"no campaign {self.campaign!r} in storage {mask_url(self.url)} "
                f"(campaigns there: {known})",
                where="--campaign",
                hint="give the campaign's config once (hpotui worker --storage URL CONFIG) "
                "to create it",
            )
        settings = use_campaign_heartbeat(self.storage, self.queue)
        lines = check_same_data(self.queue, self._checked)
        if settings is None:
            lines.append(
                "storage has no heartbeat (journal file): a dead worker's trial is "
                "re-run only when an engine on this machine restarts"
            )
        else:
            lines.append(f"heartbeat every {settings.interval_s} s, grace {settings.grace_s} s")
        return lines

    def run(self) -> int:
        if self.queue.all_terminal():
            self.log("info", f"campaign {self.campaign} is complete: nothing to run")
            return EXIT_OK
        if self.options.log_path is not None:
            self.options.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.options.log_path, "a", encoding="utf-8")  # noqa: SIM115
        next_check = 0.0
        try:
            for slot in range(self.options.workers):
                self._spawn(slot)
            self._start_monitor()
            while True:
                self._drain(timeout=0.2)
                while not self.actions.empty():
                    action = self.actions.get_nowait()
                    if action == "release" and self.control.holding:
                        continue  # drained or stopped from elsewhere: stays held
                    self.signal_children(action)
                now = time.monotonic()
                if now < next_check:
                    continue
                next_check = now + self.options.poll_s
                self._reap_children()
                alive = any(c.process.poll() is None for c in self.children)
                self._maintain(now, final=not alive)
                if alive:
                    continue
                for reader in self._readers:  # every last event line of the workers
                    reader.join(5.0)
                self._drain(timeout=0)
                if self.fault is not None:
                    return EXIT_ENVIRONMENT
                if self.stopping:
                    return EXIT_INTERRUPTED
                if not self.queue.all_terminal():
                    self.log("error", "every worker of this node stopped; see its log")
                    return EXIT_FAILED
                failed = [e.name for e in self.queue.entries() if e.stored_state == "failed"]
                return EXIT_FAILED if failed else EXIT_OK
        except BaseException:
            self.signal_children("stop_now")
            raise
        finally:
            if self.monitor is not None:
                self.monitor.stop()
            self._wait_children(10.0)
            with contextlib.suppress(Exception):  # a lost database: the record ages to lost
                self.control.publish(self._record("exited"), force=True)
            if self._log is not None:
                self._log.close()

    def _maintain(self, now: float, *, final: bool) -> None:
        """The periodic work of the node (its storage waits out outages)."""
        self._obey()
        self.control.publish(self._record())
        for line in self._reaper.reap():
            self.log("warning", line)
        if now >= self._next_slow:
            self._next_slow = now + SLOW_CHECK_S
            for line in self._reaper.requeue_orphans():
                self.log("warning", line)
            check_same_data(self.queue, self._checked)
        if final or now >= self._next_refresh:
            self._next_refresh = now + self.options.refresh_s
            for entry, _ in self.queue.refresh():
                self.on_event(
                    p.ExperimentFinished(
                        experiment=entry.name,
                        state=entry.state,
                        best_value=entry.counts.best_value,
                        reason=entry.reason,
                    )
                )

    def stop(self, mode: str) -> None:
        """ "after_current": finish running trials; "now": interrupt them (re-enqueued)."""
        if self.stopping == "now":
            return
        self.stopping = mode
        self.signal_children("stop_now" if mode == "now" else "stop_after")
        self.log("info", f"stopping ({mode.replace('_', ' ')})")

    def log(self, level: p.LogLevel, message: str) -> None:
        self.on_event(p.LogLine(level=level, message=self.scrub(message), source=self.host))

    # ---------------------------------------------------------------- remote control

    def _obey(self) -> None:
        """Apply a new command for this machine (engine.fleet.control)."""
        thermal = self.monitor is not None and self.monitor.hold
        orders = self.control.poll(thermal_hold=thermal)
        if orders is None:
            return
        self.log("info", orders.message)
        for action in orders.controls:
            self.signal_children(action)
        if orders.workers is not None:
            self.scale(orders.workers)

    def scale(self, n: int) -> None:
        """Keep `n` workers: start more, or ask extras to finish their trial and leave."""
        self.target = n
        active = [c for c in self.children if c.process.poll() is None and not c.stopping]
        for child in active[n:]:
            child.stopping = True
            self._control(child, "stop_after")
        used = {c.slot for c in active[:n]}
        free = (slot for slot in range(10_000) if slot not in used)
        for _ in range(n - len(active)):
            self._spawn(next(free))

    def _record(self, state: str | None = None) -> HostRecord:
        device = self.options.device or self._device()
        workers = len([c for c in self.children if c.process.poll() is None and not c.stopping])
        return host_record(
            self.host,
            "node",
            device,
            self.options.memory_limit,
            workers=workers,
            running=self.running,
            thermal=self.thermal,
            state=state or self.control.state(len(self.running), stopping=bool(self.stopping)),
        )

    def _device(self) -> str:
        entries = self.queue.entries(with_trials=False)
        return entries[0].config.device if entries else "cpu"

    def _note(self, event: p.Event) -> None:
        """Follow our workers' trials and this machine's thermal state for the record."""
        if isinstance(event, p.TrialStarted):
            self.running.add(f"{event.experiment}#{event.trial}")
        elif isinstance(event, p.TrialFinished):
            self.running.discard(f"{event.experiment}#{event.trial}")
        elif isinstance(event, p.ThermalChanged):
            self.thermal = event.state

    # ---------------------------------------------------------------- workers

    def _spawn(self, slot: int, restarts: int = 0) -> None:
        worker_id = f"w{slot + 1}@{self.host}"
        cmd = [
            *self.options.python,
            "-m",
            "engine.fleet.node_worker",
            "--campaign",
            self.campaign,
            "--worker-id",
            worker_id,
            "--parent",
            str(os.getpid()),
            "--salt",
            str(node_salt(self.host, os.getpid(), slot + restarts * 1000)),
        ]
        if self.options.threads:
            cmd += ["--threads", str(self.options.threads)]
        if self.options.device:
            cmd += ["--device", self.options.device]
        if self.options.storage_patience_s is not None:
            cmd += ["--storage-patience", str(self.options.storage_patience_s)]
        if self.options.memory_limit is not None:
            cmd += ["--memory-limit", str(self.options.memory_limit)]
        env = {**os.environ, STORAGE_ENV: self.url}
        process = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        child = _Child(slot, worker_id, process, restarts)
        self.children.append(child)
        if (self.monitor is not None and self.monitor.hold) or self.control.holding:
            self._control(child, "hold")
        reader = threading.Thread(target=self._read_events, args=(child,), daemon=True)
        child.reader = reader
        reader.start()
        self._readers = [r for r in self._readers if r.is_alive()] + [reader]
        threading.Thread(target=self._read_log, args=(child,), daemon=True).start()

    def _read_events(self, child: _Child) -> None:
        assert child.process.stdout is not None
        pump_events(child.process.stdout, child.worker_id, self.events.put, self.faults)

    def _read_log(self, child: _Child) -> None:
        assert child.process.stderr is not None
        for raw in child.process.stderr:
            text = self.scrub(raw.decode(errors="replace"))
            with self._log_lock:
                if self._log is not None:
                    with contextlib.suppress(OSError, ValueError):
                        self._log.write(f"[{child.worker_id}] {text}")
                        self._log.flush()

    def _drain(self, timeout: float) -> None:
        try:
            event = self.events.get(timeout=timeout) if timeout else self.events.get_nowait()
        except queue_module.Empty:
            return
        self._note(event)
        self.on_event(event)
        while True:
            try:
                event = self.events.get_nowait()
            except queue_module.Empty:
                return
            self._note(event)
            self.on_event(event)

    def _reap_children(self) -> None:
        for child in list(self.children):
            rc = child.process.poll()
            if rc is None:
                continue
            self.children.remove(child)
            if rc == EXIT_ENVIRONMENT and self.fault is None:
                self._stop_for_fault(child)
                continue
            if rc == 0 or self.stopping:
                continue
            lost = self._interrupt_trials_of(child.process.pid)
            self.log(
                "warning",
                f"worker {child.worker_id} exited with code {rc}"
                + (f"; {lost} trial(s) queued again" if lost else ""),
            )
            if child.restarts < MAX_RESTARTS and not self.queue.all_terminal():
                self._spawn(child.slot, child.restarts + 1)

    def _stop_for_fault(self, child: _Child) -> None:
        """A worker met a full disk or an unwritable path: the next one would too, so the
        node stops (exit 3) with that worker's line instead of restarting it; the trials
        of its workers are recorded interrupted and re-run when it resumes."""
        if child.reader is not None:
            child.reader.join(5.0)  # its last line, the fault, may still be in the pipe
        self.fault = self.faults.get(child.worker_id) or (
            f"worker {child.worker_id} stopped: the disk is full or a path is not writable "
            f"(see {self.options.log_path or 'the node log'}); fix it, then run the same "
            "command again to resume"
        )
        self._interrupt_trials_of(child.process.pid)
        self.log("error", self.fault)
        self.stop("now")

    def _interrupt_trials_of(self, pid: int) -> int:
        """Record the RUNNING trials of our dead worker `pid` as interrupted, now (no need
        to wait for the grace period: we saw it die)."""
        from engine.storage.recovery import interrupt_trial

        n = 0
        for entry in self.queue.entries():
            for t in entry.trials:
                attrs = t.user_attrs
                if (
                    t.state == TrialState.RUNNING
                    and attrs.get(T_HOST) == self.host
                    and attrs.get(T_PID) == pid
                ):
                    with campaign_lock(self.storage, self.campaign):
                        interrupt_trial(self.storage, entry, t, "worker process died")
                    n += 1
        return n

    def signal_children(self, action: str) -> None:
        for child in self.children:
            child.stopping = child.stopping or action in ("stop_after", "stop_now")
            self._control(child, action)

    def _control(self, child: _Child, action: str) -> None:
        if child.process.poll() is not None or child.process.stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            child.process.stdin.write((json.dumps({"control": action}) + "\n").encode())
            child.process.stdin.flush()

    def _start_monitor(self) -> None:
        if not self.options.monitor:
            return
        spec = monitor_spec(self.storage, self.queue)
        pids = lambda: [c.process.pid for c in self.children if c.process.poll() is None]  # noqa: E731
        self.monitor = NodeMonitor(spec, pids, self.events, self.actions)
        why = self.monitor.start()
        if why:
            self.monitor = None
            self.log("warning", why)

    def _wait_children(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for child in self.children:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


def install_signal_handlers(node: WorkerNode) -> None:
    """First SIGINT: finish running trials, start no more; second SIGINT or SIGTERM:
    interrupt them now (they are re-run by any worker)."""
    count = {"n": 0}

    def on_signal(signum: int, frame: Any) -> None:
        count["n"] += 1
        now = signum != signal.SIGINT or count["n"] > 1
        node.stop("now" if now else "after_current")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
