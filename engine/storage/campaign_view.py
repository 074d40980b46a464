"""One view of a campaign, whoever looks: everything a front-end needs to draw it, read
from the storage (the source of truth) as protocol events.

The engine sends these on start and to each front-end that attaches; a front-end that
opens a finished campaign reads them itself, with no engine (hpotui/stored.py). Either
way the same function reads the same storage, so a finished campaign shows exactly what
the engine would have sent.

Rules:
- `stored_view` reads each experiment's trials once and builds, in this order: one
  `ExperimentTrials` per active experiment (engine/storage/trial_records.py: every trial that
  ran, its loss curve from the intermediate values), the `QueueSnapshot`, and the
  machines' records as `HostsChanged` (engine/fleet/host_records.py's `host_views`,
  passed in by the caller: the fleet is a layer above the storage).
- It only reads: no study, attribute or trial is created or changed.
- `finished` says whether the stored campaign is one no engine is needed for: every
  experiment of the config stored, unchanged, done/failed/skipped, and no trial RUNNING
  (a trial a dead engine left RUNNING needs one to be recovered).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from engine import protocol as p
from engine.campaign.model import ExperimentConfig
from engine.storage.queue import TERMINAL, CampaignQueue, Entry
from engine.storage.trial_records import experiment_trials

Hosts = Callable[[], list[dict[str, Any]]]


def stored_view(
    queue: CampaignQueue,
    workers: int,
    *,
    hosts: Hosts | None = None,
    needs_bigger: Callable[[Entry], int] | None = None,
    entries: list[Entry] | None = None,
) -> list[p.Event]:
    """The campaign as stored: trials per experiment, the queue, and the machines as
    `hosts()` reads them (engine.fleet.host_records.host_views, from a layer above)."""
    entries = queue.entries() if entries is None else entries
    events: list[p.Event] = [experiment_trials(e) for e in entries]
    events.append(queue.snapshot(workers, needs_bigger, entries=entries))
    if hosts is not None:
        events.append(p.HostsChanged(hosts=hosts()))
    return events


def finished(entries: Sequence[Entry], experiments: Sequence[ExperimentConfig]) -> bool:
    """Does the stored campaign need no engine? (module docstring)"""
    by_name = {e.name: e for e in entries}
    if not experiments or any(x.name not in by_name for x in experiments):
        return False
    for x in experiments:
        entry = by_name[x.name]
        if entry.stored_state not in TERMINAL or entry.config.to_dict() != x.to_dict():
            return False
    return all(e.stored_state in TERMINAL and e.counts.running == 0 for e in entries)
