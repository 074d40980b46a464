"""What `hpotui worker` does before its workers start: find or create the campaign in
the storage, and keep the storage's password out of everything it prints or writes.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from optuna.storages import BaseStorage

from engine.campaign.model import Campaign
from engine.fleet.datacheck import record_checksums
from engine.fleet.monitor import record_monitor_spec
from engine.storage.backend import mask_url
from engine.storage.queue import S_CAMPAIGN, CampaignQueue
from engine.worker.heartbeat import HeartbeatSettings, campaign_lock, record_settings


class Scrubber:
    """Removes the password of a storage URL from any text (logs, messages): the whole
    URL becomes its masked form, and the password alone (as written, and URL-decoded)
    becomes `***`. Passwords under 3 characters are left alone (they would garble
    every log line and protect nothing)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.masked = mask_url(url)
        raw = _password(url)
        secrets = {raw, unquote(raw)}
        self.secrets = sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = text.replace(self.url, self.masked) if self.url else text
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _password(url: str) -> str:
    match = re.search(r"://[^:/@?#]*:([^/?#]*)@", url) or re.search(
        r"[?&]password=([^&#]*)", url, re.IGNORECASE
    )
    return match.group(1) if match else ""


def campaigns_in(storage: BaseStorage) -> list[str]:
    """The names of the campaigns that have experiments in `storage`."""
    names = {
        str(s.user_attrs[S_CAMPAIGN])
        for s in storage.get_all_studies()
        if S_CAMPAIGN in s.user_attrs
    }
    return sorted(names)


def create_campaign(
    storage: BaseStorage, campaign: Campaign, settings: HeartbeatSettings
) -> list[str]:
    """Create (or bring up to date) the campaign's studies, as the engine does on start,
    under the campaign's database lock. Returns one line per experiment created."""
    from engine.campaign.plan import Plan, plan_experiment

    queue = CampaignQueue(storage, campaign.name)
    lines: list[str] = []
    with campaign_lock(storage, campaign.name):
        kept = record_settings(storage, queue, settings)
        if kept != settings:
            lines.append(
                f"heartbeat: the campaign's {kept.interval_s} s / grace {kept.grace_s} s "
                "apply (set when it was created)"
            )
        plan = Plan()
        for exp in campaign.experiments:
            plan_experiment(exp, plan)
            _, created = queue.ensure(
                exp, plan.grids[exp.name], plan.space_keys[exp.name], plan.extremes[exp.name]
            )
            if created:
                lines.append(f"{exp.name}: created ({exp.n_trials} trials)")
        record_checksums(queue)
        record_monitor_spec(storage, queue, campaign.monitor)
    return lines
