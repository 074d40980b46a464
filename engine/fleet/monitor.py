"""Thermal and memory protection on a worker node: the engine's policy, per machine.

Each machine judges its own temperature and memory (engine.monitor), with the
thresholds of the campaign's config, stored in the campaign's meta study when the
campaign is created (`hpotui.monitor`), so a machine joining by name applies the same
ones. The decisions become control lines to this node's workers: `hold` (start no new
trial), `release`, and `interrupt` (critical: running trials are interrupted and re-run
later, by any machine).
"""

from __future__ import annotations

import dataclasses
import os
import queue
from collections.abc import Callable
from typing import Any

from optuna.storages import BaseStorage

from engine import protocol as p
from engine.campaign.model import MonitorSpec
from engine.storage.queue import PREFIX, CampaignQueue

S_MONITOR = PREFIX + "monitor"


def record_monitor_spec(storage: BaseStorage, queue: CampaignQueue, spec: MonitorSpec) -> None:
    """Store the campaign's thresholds unless it has some already."""
    import optuna

    try:
        sid = storage.get_study_id_from_name(queue.meta_name)
    except KeyError:
        sid = optuna.create_study(
            storage=storage, study_name=queue.meta_name, load_if_exists=True
        )._study_id
    if S_MONITOR not in storage.get_study_user_attrs(sid):
        storage.set_study_user_attr(sid, S_MONITOR, dataclasses.asdict(spec))


def monitor_spec(storage: BaseStorage, queue: CampaignQueue) -> MonitorSpec:
    """The campaign's thresholds (the defaults when it stored none)."""
    try:
        sid = storage.get_study_id_from_name(queue.meta_name)
    except KeyError:
        return MonitorSpec()
    raw = storage.get_study_user_attrs(sid).get(S_MONITOR)
    if not isinstance(raw, dict):
        return MonitorSpec()
    known = {f.name for f in dataclasses.fields(MonitorSpec)}
    return MonitorSpec(**{k: v for k, v in raw.items() if k in known})


class NodeMonitor:
    """Samples this machine and turns the policy's decisions into events and control
    actions, both handed to the node's main thread through queues."""

    def __init__(
        self,
        spec: MonitorSpec,
        pids: Callable[[], list[int]],
        events: queue.Queue[p.Event],
        actions: queue.Queue[str],
    ) -> None:
        self.spec = spec
        self.pids = pids
        self.events = events
        self.actions = actions
        self.hold = False
        self._thread: Any = None

    def start(self) -> str | None:
        """Start sampling; a one-line reason when this machine cannot be monitored."""
        try:
            from engine.monitor.factory import make_probe
            from engine.monitor.policy import ThermalPolicy
            from engine.monitor.sampler import MonitorThread

            probe = make_probe(lambda: [os.getpid(), *self.pids()])
            self._thread = MonitorThread(
                probe,
                ThermalPolicy(self.spec),
                self._on_sample,
                trial_running=lambda: bool(self.pids()),
                on_error=lambda exc: self.events.put(
                    p.LogLine(level="warning", message=f"monitor: {exc}")
                ),
            ).start()
        except Exception as exc:  # a probe that cannot open: run, but say so
            return f"hardware monitor unavailable: {exc}"
        return None

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop(timeout=2)

    def _on_sample(self, sample: Any, decision: Any) -> None:
        event = decision.event()
        if event is not None:
            self.events.put(event)
        hold = not decision.allow_new_trials
        if hold != self.hold:
            self.hold = hold
            self.actions.put("hold" if hold else "release")
        if decision.stop_running_trials and event is not None:
            self.actions.put("interrupt")
