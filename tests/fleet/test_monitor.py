"""Each machine applies the campaign's thermal thresholds to its own workers."""

from __future__ import annotations

import queue
from pathlib import Path

from engine import protocol as p
from engine.campaign.model import MonitorSpec
from engine.fleet.monitor import NodeMonitor, monitor_spec, record_monitor_spec
from engine.monitor.policy import PolicyDecision
from engine.storage.backend import open_storage
from engine.storage.queue import CampaignQueue


def test_the_campaigns_thresholds_reach_every_machine(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=None)
    queue_ = CampaignQueue(storage, "dist")
    assert monitor_spec(storage, queue_) == MonitorSpec()
    record_monitor_spec(storage, queue_, MonitorSpec(warning_c=70.0, critical_c=80.0))
    record_monitor_spec(storage, queue_, MonitorSpec())  # the first one stays
    assert monitor_spec(storage, queue_) == MonitorSpec(warning_c=70.0, critical_c=80.0)


def test_decisions_become_control_actions_once() -> None:
    events: queue.Queue[p.Event] = queue.Queue()
    actions: queue.Queue[str] = queue.Queue()
    monitor = NodeMonitor(MonitorSpec(), lambda: [], events, actions)
    hot = PolicyDecision("critical", False, True, ("ok", "critical", "cpu 96 C"))
    still_hot = PolicyDecision("critical", False, True)
    cool = PolicyDecision("ok", True, False, ("critical", "ok", "cpu 70 C"))
    for decision in (hot, still_hot, cool):
        monitor._on_sample(None, decision)
    assert [actions.get_nowait() for _ in range(actions.qsize())] == [
        "hold",
        "interrupt",
        "release",
    ]
    changes = [events.get_nowait() for _ in range(events.qsize())]
    assert [(e.previous, e.state) for e in changes] == [("ok", "critical"), ("critical", "ok")]  # type: ignore[attr-defined]
