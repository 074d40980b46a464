"""The engine's main loop: one thread owns the campaign state and applies, in order,
commands (stdin, socket), worker events, monitor samples and periodic queue checks.

Start-up: lock the campaign (one engine per campaign; the lock dies with the process),
create or check each experiment's study, recover trials a dead engine left RUNNING
(recorded interrupted, re-enqueued), Hello, snapshot, workers. It ends when every
experiment is done/failed/skipped, or on Stop / SIGTERM, with Bye.

A database outage is waited out inside the storage (`engine.storage.outage`, reported as
`StorageOutage` events); past its patience the engine ends with Bye 75, resumable.
Before Bye it drains its workers' last events and reads the storage once more
(`final_sweep`), so every trial finished anywhere is in the event stream and events.jsonl.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import IO, Any

from optuna.storages import BaseStorage

from engine import protocol as p
from engine.campaign.model import Campaign, ExperimentConfig
from engine.campaign.plan import Plan, data_facts, plan_experiment
from engine.env_faults import EXIT_ENVIRONMENT, describe_fault
from engine.fleet.datacheck import check_same_data
from engine.fleet.engine_hosts import EngineHosts
from engine.fleet.hosts import TrialWatcher
from engine.fleet.monitor import record_monitor_spec
from engine.notify import Notifier, install
from engine.process.channels import Channels, Client, Inbox
from engine.process.commands import CommandHandler
from engine.process.outputs import Outputs
from engine.storage.backend import is_journal, journal_path, mask_url
from engine.storage.campaign_view import stored_view
from engine.storage.outage import (
    EXIT_STORAGE_UNREACHABLE,
    StorageUnreachable,
    guard_of,
    report_outages,
)
from engine.storage.queue import T_HOST, T_PID, CampaignQueue, Entry, best_trial
from engine.storage.recovery import HOST, recover
from engine.storage.view_cache import write_view
from engine.worker.heartbeat import HeartbeatSettings, record_settings, use_campaign_heartbeat
from engine.worker.pool import LocalWorkers, auto_workers, resolve_worker_count

ENGINE_VERSION = "0.1.0"
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
MAX_WORKER_CRASHES = 5
RECOVERY_INTERVAL_S = 30.0


def resolve_workers(
    spec: str | int | None, campaign: Campaign, plan: Plan, device: str | None
) -> tuple[int, int | None]:
    """(workers, threads per worker) from "auto" or a number."""

    def auto(cores: int) -> tuple[int, int]:
        from engine.train.device import resolve_device

        dev = str(resolve_device(device or campaign.experiments[0].device))
        largest = max((g[-1]["n_params"] for g in plan.grids.values() if g), default=0)
        fused = any(e.fuse != 1 for e in campaign.experiments)
        return auto_workers(cores, dev, largest, fused)

    return resolve_worker_count(spec, auto)


class Engine:
    """Runs one campaign; see the module docstring."""

    def __init__(
        self,
        campaign: Campaign,
        storage: BaseStorage,
        storage_url: str,
        *,
        out: IO[str] | None,
        workers: str | int | None = None,
        device: str | None = None,
        monitor: bool = True,
        config_path: str = "",
    ) -> None:
        from engine import paths

        self.campaign = campaign
        self.storage = storage
        self.storage_url = storage_url
        self.queue = CampaignQueue(storage, campaign.name)
        self.dir = paths.outputs_dir() / campaign.name
        self.inbox: Inbox = queue.Queue()
        self.channels = Channels(out, self.inbox)
        self.outputs = Outputs(self.dir)
        self.channels.sinks.append(self._record)
        report_outages(storage, self.channels.emit, "engine")
        self.plan = Plan()
        self.workers_spec = workers
        self.workers_explicit = False  # --workers given: it wins over a stored count
        self.device = device
        self.monitor_enabled = monitor
        self.config_path = config_path
        self.stopping: str | None = None  # "after_current" | "now"
        self.started_experiments: set[str] = set()
        self.last_snapshot: Any = None
        self.n_workers = 1
        self.resumed = False
        self.thermal_hold = False
        self.worker_crashes = 0
        self.known_states: dict[str, str] = {}  # experiment -> stored state last announced
        self.notes: list[tuple[p.LogLevel, str]] = []  # logged right after Hello
        self._last_hw_logged = 0.0
        self.keeping_awake: Callable[[], bool] | None = None  # the keep-awake hold, if any
        self.local: LocalWorkers | None = None
        self.watcher = TrialWatcher(self.queue, is_local=self._is_local_trial)
        self.handler = CommandHandler(self)
        self.hosts: EngineHosts | None = None  # set in run(): host record, remote control
        self.finished_all = False  # every experiment done/failed/skipped (not a stop)
        self.first_commands: list[str] = []  # `--command` lines, applied before the loop
        self.notifier = Notifier(
            campaign.name,
            campaign.notify.with_env(),
            host=HOST,
            log=self._log_from_thread,
        )
        install(self.notifier)  # for engine.notify.storage_outage
        self.channels.sinks.append(self.notifier.on_event)

    # ---------------------------------------------------------------- start-up

    def prepare(self) -> None:
        """Create or check every study, recover trials of a dead engine."""
        existing = {e.name for e in self.queue.entries(with_trials=False)}
        self.resumed = bool(existing)
        for exp in self.campaign.experiments:
            self.add_experiment(exp)
        record_settings(self.storage, self.queue, HeartbeatSettings())
        use_campaign_heartbeat(self.storage, self.queue)
        record_monitor_spec(self.storage, self.queue, self.campaign.monitor)
        check_same_data(self.queue)  # records the checksums of a new campaign
        self.recover()
        self.apply_refresh()

    def add_experiment(self, exp: ExperimentConfig) -> bool:
        plan_experiment(exp, self.plan)
        _, created = self.queue.ensure(
            exp,
            self.plan.grids[exp.name],
            self.plan.space_keys[exp.name],
            self.plan.extremes[exp.name],
        )
        facts = data_facts(exp.data)
        if facts is not None:
            self.queue.set_splits(exp.name, facts)
        return created

    def recover(self) -> int:
        """Interrupted trials of dead processes: recorded and re-enqueued (engine.storage.recovery)."""
        live = self.local.pids() if self.local is not None else []
        return recover(self.queue, ask_lock=self.ask_lock_path, live_pids=live)

    @property
    def ask_lock_path(self) -> str | None:
        """On a journal file, the lock local workers hold from `ask` until their trial
        records its pid; None on a database."""
        if not is_journal(self.storage_url):
            return None
        return str(journal_path(self.storage_url)) + ".ask.lock"

    def _is_local_trial(self, t: Any) -> bool:
        """Run by one of this engine's workers, alive or just exited (its events come
        through its pipe, so the storage watcher must not report it as well)."""
        pids = self.local.spawned if self.local is not None else set()
        return bool(t.user_attrs.get(T_HOST) == HOST and t.user_attrs.get(T_PID) in pids)

    def hello(self) -> p.Hello:
        return p.Hello(
            protocol_version=p.PROTOCOL_VERSION,
            engine_version=ENGINE_VERSION,
            campaign=self.campaign.name,
            config_path=self.config_path,
            storage=mask_url(self.storage_url),
            pid=os.getpid(),
            host=HOST,
            workers=self.n_workers,
            resumed=self.resumed,
        )

    # ---------------------------------------------------------------- main loop

    def run(self) -> int:
        spec = self.workers_spec
        stored = self.queue.stored_workers()
        if stored is not None and not self.workers_explicit:
            spec = stored  # set with +/- in an earlier session; --workers wins
        self.n_workers, threads = resolve_workers(spec, self.campaign, self.plan, self.device)
        self.channels.emit(self.hello())
        for level, note in self.notes:
            self.log(level, note)
        self.send_view(None)
        why = self.channels.serve(self.dir / "engine.sock")
        if why:
            self.log("warning", f"no socket for re-attaching: {why}")
        guard = guard_of(self.storage)
        self.local = LocalWorkers(
            storage_patience_s=guard.patience_s if guard is not None else None,
            storage_url=self.storage_url,
            campaign=self.campaign.name,
            on_event=lambda e: self.inbox.put(("worker", e, None)),
            log_path=self.dir / "workers.log",
            threads=threads,
            device=self.device,
            lock_path=self.ask_lock_path,
        )
        self.log("info", f"{self.n_workers} worker(s), {threads} thread(s) each")
        self.hosts = EngineHosts(self, HOST)
        monitor = self._start_monitor()
        exit_code = EXIT_OK
        reason = "campaign complete"
        reachable = True
        try:
            for line in self.first_commands:  # Reply on stdout, before any loop decision
                self.handler.handle_line(line, None)
            exit_code, reason = self._loop()
        except StorageUnreachable as error:
            exit_code, reason, reachable = EXIT_STORAGE_UNREACHABLE, str(error), False
        except Exception as exc:
            fault = describe_fault(exc) if isinstance(exc, OSError) else None
            if fault is None:
                self.notifier.engine_crashed(f"{type(exc).__name__}: {exc}")
                self.notifier.close()
                raise
            exit_code, reason = EXIT_ENVIRONMENT, fault  # disk full, outputs unwritable
        finally:
            if monitor is not None:
                monitor.stop(timeout=2)
            if self.local is not None:
                self.local.broadcast("stop_now")
                deadline = time.monotonic() + 5
                while self.local.alive() and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.local.kill_all()
            if self.hosts is not None and reachable:
                with contextlib.suppress(StorageUnreachable, OSError):
                    self.hosts.leave(quiet=exit_code == EXIT_ENVIRONMENT)
        if exit_code != EXIT_ENVIRONMENT and reachable:
            try:
                self.final_sweep()
                if self.finished_all:
                    self.keep_view()
            except StorageUnreachable as error:
                exit_code, reason = EXIT_STORAGE_UNREACHABLE, str(error)
            except OSError as error:  # the disk filled up at the very end
                fault = describe_fault(error)
                if fault is None:
                    raise
                exit_code, reason = EXIT_ENVIRONMENT, fault
        if exit_code == EXIT_ENVIRONMENT:
            self.channels.emit(p.ErrorRaised(message=reason))
            with contextlib.suppress(OSError):  # where the fault allows: else at restart
                self.recover()
        self.channels.emit(p.Bye(reason=reason, exit_code=exit_code))
        if self.finished_all:
            self.notifier.campaign_done(reason)
        elif exit_code == EXIT_FAILED:
            self.notifier.engine_crashed(reason)
        elif exit_code in (EXIT_ENVIRONMENT, EXIT_STORAGE_UNREACHABLE):
            self.notifier.campaign_stopped(reason)
        self.notifier.close()  # bounded: the last message goes out before the exit
        self.channels.close()
        with contextlib.suppress(OSError):
            self.outputs.close()
        return exit_code

    def _loop(self) -> tuple[int, str]:
        assert self.local is not None
        next_check = 0.0
        next_recovery = time.monotonic() + RECOVERY_INTERVAL_S
        while True:
            try:
                kind, payload, source = self.inbox.get(timeout=0.25)
                self._dispatch(kind, payload, source)
            except queue.Empty:
                pass
            now = time.monotonic()
            if now < next_check:
                continue
            next_check = now + 0.5
            for worker_id, rc in self.local.reap():
                if rc == EXIT_ENVIRONMENT:  # it could not write: neither can the next one
                    return EXIT_ENVIRONMENT, self.local.faults.get(worker_id) or (
                        f"worker {worker_id} stopped: the disk is full or the outputs are "
                        f"not writable (see {self.dir / 'workers.log'}); fix it, then run "
                        "the same command again to resume"
                    )
                if rc == EXIT_STORAGE_UNREACHABLE:  # not a crash: recovered when reachable
                    self.log("warning", f"worker {worker_id} gave up on the storage")
                    self.recover()
                elif rc != 0:
                    self.worker_crashes += 1
                    self.log("warning", f"worker {worker_id} exited with code {rc}")
                    self.recover()
            if self.worker_crashes > MAX_WORKER_CRASHES:
                return EXIT_FAILED, (
                    f"workers keep crashing ({self.worker_crashes} in a row without a "
                    f"finished trial); see {self.dir / 'workers.log'}"
                )
            if now > next_recovery:
                # other machines' stale trials, and on any storage a trial whose process
                # was still alive (or a zombie) at the last look and has died since
                next_recovery = now + RECOVERY_INTERVAL_S
                self.recover()
            for event in self.watcher.poll():  # trials of other machines
                self._on_worker_event(event)
            if self.hosts is not None:  # our host record and commands; other machines'
                self.hosts.tick()
            self.apply_refresh()
            self.send_snapshot()
            if self.stopping:
                if not self.local.alive():
                    return EXIT_INTERRUPTED, f"stopped ({self.stopping.replace('_', ' ')})"
                continue
            if self.queue.all_terminal():
                if not self.local.alive():
                    self.finished_all = True
                    failed = [e.name for e in self.queue.entries() if e.stored_state == "failed"]
                    if failed:
                        return EXIT_FAILED, "campaign finished; failed: " + ", ".join(failed)
                    return EXIT_OK, "campaign complete"
                continue
            if not self.thermal_hold and self._has_work():
                self.local.scale(self.n_workers)

    def final_sweep(self) -> None:
        """Before Bye: every worker event still in a pipe or the inbox is emitted, then the
        storage is read once more, so a trial finished anywhere (another machine, or a
        local worker that died before its event) is reported before the engine leaves."""
        assert self.local is not None
        self.local.join_readers(timeout=5.0)
        while True:
            try:
                kind, payload, source = self.inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "worker":
                self._dispatch(kind, payload, source)
        for event in self.watcher.poll(force=True, final=True):
            self._on_worker_event(event)
        self.apply_refresh()
        self.send_snapshot()

    def keep_view(self) -> None:
        """The finished campaign's stored view beside its journal (engine/storage/view_cache.py):
        a dashboard opens it without replaying the journal. Nothing is written to the
        journal after this (only Bye follows)."""
        if not is_journal(self.storage_url):
            return
        entries = self.queue.entries()
        view = stored_view(self.queue, self.n_workers, hosts=self.host_views, entries=entries)
        write_view(self.dir, journal_path(self.storage_url), entries, view)

    def host_views(self) -> list[dict[str, Any]]:
        """Every machine's record as front-ends show it (engine.fleet.host_records)."""
        from engine.fleet.host_records import host_views

        return host_views(self.storage, self.queue)

    def _has_work(self) -> bool:
        if self.queue.paused_all():
            return False
        return any(e.stored_state == "queued" for e in self.queue.entries(with_trials=False))

    def _dispatch(self, kind: str, payload: Any, source: Client | None) -> None:
        if kind == "line":
            self.handler.handle_line(payload, source)
        elif kind == "attach":
            assert isinstance(source, Client)
            self.channels.emit(self.hello(), only=source)
            self.send_view(source)
            self.channels.add_client(source)
        elif kind == "eof" and source is None:
            self.log("info", "front-end gone (stdin closed); running headless")
        elif kind == "eof" and isinstance(source, Client):
            source.close()  # a detached socket front-end: not kept open (hpotui status)
        elif kind == "worker":
            if isinstance(payload, p.TrialStarted | p.TrialFinished):
                self.watcher.note_local(payload.experiment, payload.trial)
                if self.hosts is not None:
                    self.hosts.note(payload)
            if isinstance(payload, p.TrialFinished):
                self.watcher.note_reported(payload.experiment, payload.trial)
            self._on_worker_event(payload)
        elif kind == "sample":
            self._on_sample(*payload)
        elif kind == "signal":
            self.stop(str(payload))

    def _on_worker_event(self, event: p.Event) -> None:
        if isinstance(event, p.TrialStarted):
            if event.experiment not in self.started_experiments:
                self.started_experiments.add(event.experiment)
                self.channels.emit(p.ExperimentStarted(experiment=event.experiment))
            self.channels.emit(event)
            self.send_snapshot(force=True)
        elif isinstance(event, p.TrialFinished):
            self.worker_crashes = 0
            self.channels.emit(event)
            self.write_outputs(event.experiment)
            self.apply_refresh()
            self.send_snapshot(force=True)
        else:
            self.channels.emit(event)

    # ---------------------------------------------------------------- helpers

    def stop(self, mode: str) -> None:
        assert self.local is not None
        if self.stopping == "now":
            return
        self.stopping = mode
        self.local.broadcast("stop_now" if mode == "now" else "stop_after")
        self.log("info", f"stopping ({mode.replace('_', ' ')})")

    def apply_refresh(self) -> None:
        """Apply derived state changes (any worker may have applied them already) and
        announce each experiment that became done / failed / skipped since last time."""
        self.queue.refresh()
        for entry in self.queue.entries():
            before = self.known_states.get(entry.name)
            if before is not None and before != entry.stored_state:
                self.experiment_finished(entry)
            self.known_states[entry.name] = entry.stored_state

    def experiment_finished(self, entry: Entry) -> None:
        if entry.stored_state not in ("done", "failed", "skipped"):
            return
        best = best_trial(entry.trials)
        self.channels.emit(
            p.ExperimentFinished(
                experiment=entry.name,
                state=entry.stored_state,  # type: ignore[arg-type]
                best_value=best.value if best else None,
                best_params=dict(best.params) if best else {},
                reason=entry.reason,
            )
        )
        self.write_outputs(entry.name)

    def write_outputs(self, experiment: str) -> None:
        try:
            self.outputs.write_experiment(self.queue.entry(experiment))
        except Exception as exc:  # outputs are derived: only a fault of the machine stops
            if isinstance(exc, OSError) and describe_fault(exc):
                raise  # disk full, outputs unwritable: one line and exit 3 (run())
            self.log("warning", f"could not write outputs of {experiment}: {exc}")

    def send_snapshot(self, *, force: bool = False) -> None:
        needs = self.hosts.needs_bigger if self.hosts is not None else None
        snap = self.queue.snapshot(self.n_workers, needs)
        key = _snapshot_key(snap)
        if force or key != self.last_snapshot:
            self.last_snapshot = key
            self.channels.emit(snap)

    def send_view(self, only: Client | None) -> None:
        """The campaign as stored (engine.storage.campaign_view: every stored trial, one
        `ExperimentTrials` per experiment, never written to events.jsonl; the queue; the
        machines), to `only` (an attaching front-end) or to all at start-up."""
        needs = self.hosts.needs_bigger if self.hosts is not None else None
        view = stored_view(self.queue, self.n_workers, hosts=self.host_views, needs_bigger=needs)
        for event in view:
            if isinstance(event, p.QueueSnapshot) and only is None:
                self.last_snapshot = _snapshot_key(event)  # what send_snapshot compares
            self.channels.emit(event, only=only)

    def log(self, level: p.LogLevel, message: str) -> None:
        self.channels.emit(p.LogLine(level=level, message=message))

    def _log_from_thread(self, level: p.LogLevel, message: str) -> None:
        """A log line from another thread (the notification sender): an event via the
        inbox, and engine.log (stderr), which still has it when the loop has ended."""
        self.inbox.put(("worker", p.LogLine(level=level, message=message), None))
        print(f"{level}: {message}", file=sys.stderr)

    def _record(self, event: p.Event) -> None:
        """Every event goes to events.jsonl (hardware samples at most every 30 s) and
        trial lines to the experiment's log."""
        if isinstance(event, p.ExperimentTrials):
            return
        if isinstance(event, p.HardwareSampled):
            if event.ts - self._last_hw_logged < 30:
                return
            self._last_hw_logged = event.ts
        with contextlib.suppress(OSError):
            self.outputs.append_event(event)
            if isinstance(event, p.TrialStarted):
                self.outputs.log(
                    event.experiment,
                    f"{time.strftime('%F %T')} trial {event.trial} started on {event.worker}: "
                    f"{event.architecture} {event.params}",
                )
            elif isinstance(event, p.TrialFinished):
                self.outputs.log(
                    event.experiment,
                    f"{time.strftime('%F %T')} trial {event.trial} {event.state} "
                    f"value={event.value} in {event.duration_s:.1f}s {event.reason}".rstrip(),
                )

    # ---------------------------------------------------------------- monitor

    def _start_monitor(self) -> Any:
        if not self.monitor_enabled:
            return None
        try:
            from engine.monitor.factory import make_probe
            from engine.monitor.policy import ThermalPolicy
            from engine.monitor.sampler import MonitorThread

            local = self.local
            probe = make_probe(lambda: [os.getpid(), *(local.pids() if local else [])])
            return MonitorThread(
                probe,
                ThermalPolicy(self.campaign.monitor),
                lambda s, d: self.inbox.put(("sample", (s, d), None)),
                trial_running=lambda: bool(local and local.alive()),
                on_error=lambda exc: self.inbox.put(
                    ("worker", p.LogLine(level="warning", message=f"monitor: {exc}"), None)
                ),
            ).start()
        except Exception as exc:
            self.log("warning", f"hardware monitor unavailable: {exc}")
            return None

    def _on_sample(self, sample: Any, decision: Any) -> None:
        assert self.local is not None
        held = self.keeping_awake() if self.keeping_awake is not None else None
        sample = replace(sample, power=replace(sample.power, keep_awake=held))
        self.channels.emit(p.HardwareSampled(sample=sample.to_dict()))
        event = decision.event()
        if event is not None:
            self.channels.emit(event)
            if self.hosts is not None and isinstance(event, p.ThermalChanged):
                self.hosts.note_thermal(event.state)
        hold = not decision.allow_new_trials
        if hold != self.thermal_hold:
            self.thermal_hold = hold
            drained = self.hosts is not None and self.hosts.control.holding
            if hold or not drained:  # a drained or stopped host stays held
                self.local.broadcast("hold" if hold else "release")
        if decision.stop_running_trials and event is not None:
            self.local.broadcast("interrupt")


def _snapshot_key(snap: p.QueueSnapshot) -> str:
    """A snapshot's content without its time: an unchanged queue is not sent again."""
    return p.encode(
        p.QueueSnapshot(
            experiments=snap.experiments, workers=snap.workers, paused_all=snap.paused_all, ts=0
        )
    )
