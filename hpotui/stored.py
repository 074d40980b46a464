"""A finished campaign, opened from its storage with no engine.

`hpotui CONFIG` on a campaign whose every experiment is done, failed or skipped has
nothing for an engine to do: starting one (its pre-flight, its imports) only delayed the
picture by seconds. `open_finished` reads the storage itself, through the loader the
engine uses (engine/storage/campaign_view.py), and returns the view as the events the engine
would have sent; the log's recent lines (hpotui/history.py) follow once it is drawn.

It only reads: a journal file is opened without the engine's repair (a torn last record,
which Optuna skips, is the engine's to cut back), a database with a connect timeout. Any
doubt (no storage yet, an experiment added or changed in the config, a trial still
RUNNING, a storage that does not open) returns None, and the caller starts the engine,
which reconciles, recovers or reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine import protocol as p
from engine.campaign.model import Campaign, MonitorSpec

if TYPE_CHECKING:
    from optuna.storages import BaseStorage


@dataclass
class FinishedCampaign:
    name: str
    events: list[p.Event]  # the stored view
    monitor: MonitorSpec
    folder: Path  # outputs/<campaign>: its events.jsonl's recent log (`past`)
    keep: Callable[[], object] | None = None  # keeps the view read from the journal

    def past(self) -> list[p.Event]:
        """Once the view is on screen: keep it for the next open (when it was read from
        the journal), then what the log showed last: log lines, not trials or hardware,
        which the view has as they are now."""
        from hpotui.history import log_events, recent_events

        if self.keep is not None:
            self.keep()
        return log_events(recent_events(self.folder))


def open_finished(config: Path, storage: str | None) -> FinishedCampaign | None:
    """The finished campaign of `config` as events, or None (module docstring)."""
    from engine import paths
    from engine.storage.backend import default_storage_url, requested_storage
    from hpotui.link import loaded_campaign

    campaign = loaded_campaign(config)
    if not isinstance(campaign, Campaign):
        return None  # the engine reports the config's problems
    url = requested_storage(storage) or campaign.storage or default_storage_url(campaign.name)
    try:
        return _read(campaign, url, paths.outputs_dir() / campaign.name)
    except Exception:  # any doubt: the engine opens it, and says what is wrong
        return None


def _read(campaign: Campaign, url: str, folder: Path) -> FinishedCampaign | None:
    from engine.storage.backend import is_journal, journal_path
    from engine.storage.view_cache import journal_identity, read_view, write_view

    journal = journal_path(url) if is_journal(url) else None
    if journal is not None:  # the view kept at this very journal (engine/storage/view_cache.py)
        kept = read_view(folder, journal, campaign.experiments)
        if kept is not None:
            return FinishedCampaign(campaign.name, kept, campaign.monitor, folder)
    identity = None if journal is None else journal_identity(journal)
    from engine.fleet.host_records import host_views
    from engine.storage.campaign_view import finished, stored_view
    from engine.storage.queue import CampaignQueue

    storage = _open_read_only(url)
    if storage is None:
        return None
    queue = CampaignQueue(storage, campaign.name)
    entries = queue.entries()
    if not finished(entries, campaign.experiments):
        return None
    workers = queue.stored_workers() or (
        campaign.workers if isinstance(campaign.workers, int) else 1
    )
    events = stored_view(queue, workers, hosts=lambda: host_views(storage, queue), entries=entries)
    keep = None
    if journal is not None:  # the next open reads it from there

        def keep() -> object:
            return write_view(folder, journal, entries, events, identity)

    return FinishedCampaign(campaign.name, events, campaign.monitor, folder, keep)


def _open_read_only(url: str) -> BaseStorage | None:
    import optuna

    from engine.storage.backend import is_journal, journal_path, open_storage, timeout_args

    if is_journal(url):
        path = journal_path(url)
        if not path.is_file() or path.stat().st_size == 0:
            return None  # a campaign never run: the engine creates it
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return open_storage(
        url, heartbeat_interval=None, engine_kwargs={"connect_args": timeout_args(url)}
    )
