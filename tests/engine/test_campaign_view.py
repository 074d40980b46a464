"""One view of a campaign (engine/storage/campaign_view.py) and the view kept beside a
finished campaign's journal (engine/storage/view_cache.py), on a real journal written as
the workers write one (tests/tui/stored_campaign.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from engine import protocol as p
from engine.campaign.config import load_campaign
from engine.storage.backend import open_storage
from engine.storage.campaign_view import finished, stored_view
from engine.storage.queue import CampaignQueue
from engine.storage.view_cache import CACHE_FILE, read_view, write_view
from tests.tui.stored_campaign import write_stored_campaign


def test_the_view_holds_every_trial_with_its_curve_then_the_queue(workspace: Path) -> None:
    stored = write_stored_campaign(workspace, trials=4, epochs=3, prune_every=2)
    queue = CampaignQueue(
        open_storage(str(stored.journal), heartbeat_interval=None), stored.campaign
    )
    view = stored_view(queue, 2, hosts=lambda: [{"host": "a"}])
    trials = [e for e in view if isinstance(e, p.ExperimentTrials)]
    assert [type(e) for e in view[len(trials) :]] == [p.QueueSnapshot, p.HostsChanged]
    assert sum(len(e.trials) for e in trials) == stored.n_trials
    pruned = [t for e in trials for t in e.trials if t.state == "pruned"]
    assert pruned and all(t.value is None and len(t.curve) == 1 for t in pruned)  # epoch 1 of 3
    assert all(len(t.curve) == 3 for e in trials for t in e.trials if t.state == "complete")


def test_finished_means_nothing_is_left_for_an_engine(workspace: Path) -> None:
    stored = write_stored_campaign(workspace, trials=2, epochs=2)
    campaign = load_campaign(stored.config)
    queue = CampaignQueue(
        open_storage(str(stored.journal), heartbeat_interval=None), stored.campaign
    )
    assert finished(queue.entries(), campaign.experiments)
    more = dataclasses.replace(campaign.experiments[0], n_trials=3)  # the config grew
    assert not finished(queue.entries(), [more, *campaign.experiments[1:]])
    extra = dataclasses.replace(campaign.experiments[0], name="new_one")  # one was added
    assert not finished(queue.entries(), [*campaign.experiments, extra])
    queue.set_state(campaign.experiments[1].name, "queued")
    assert not finished(queue.entries(), campaign.experiments)


def test_the_kept_view_is_used_only_for_the_same_journal(workspace: Path) -> None:
    stored = write_stored_campaign(workspace, trials=2, epochs=2)
    campaign = load_campaign(stored.config)
    folder = stored.journal.parent
    queue = CampaignQueue(
        open_storage(str(stored.journal), heartbeat_interval=None), stored.campaign
    )
    entries = queue.entries()
    view = stored_view(queue, 2, entries=entries)
    assert write_view(folder, stored.journal, entries, view)
    assert (folder / CACHE_FILE).exists()
    kept = read_view(folder, stored.journal, campaign.experiments)
    assert kept is not None and [p.encode(e) for e in kept] == [p.encode(e) for e in view]
    grown = dataclasses.replace(campaign.experiments[0], n_trials=5)
    assert read_view(folder, stored.journal, [grown, *campaign.experiments[1:]]) is None
    queue.set_state(campaign.experiments[0].name, "queued")  # the journal changed
    assert read_view(folder, stored.journal, campaign.experiments) is None
