"""A campaign's studies in a storage, without any training: for the unit tests."""

from __future__ import annotations

from pathlib import Path

from optuna.storages import BaseStorage

from engine.campaign.config import load_campaign
from engine.campaign.plan import Plan, plan_experiment
from engine.storage.queue import CampaignQueue

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def make_campaign(storage: BaseStorage) -> CampaignQueue:
    """The studies of fixtures/three_by_twenty.toml (campaign "dist") in `storage`."""
    campaign = load_campaign(FIXTURES / "three_by_twenty.toml")
    queue = CampaignQueue(storage, campaign.name)
    plan = Plan()
    for exp in campaign.experiments:
        plan_experiment(exp, plan)
        queue.ensure(exp, plan.grids[exp.name], plan.space_keys[exp.name], plan.extremes[exp.name])
    return queue
