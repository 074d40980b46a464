"""Every machine of a campaign trains on the same bytes: dataset checksums in the storage.

The machine that creates an experiment's study records the sha256 of its dataset file
(`hpotui.data_sha256`, a study user attribute, next to the resolved config that names
dataset, tier and version). A worker joining from another machine re-hashes its own
copy and refuses to start when it differs, so a half-copied file, a rebuild with other
code or another ticker's data cannot mix into the same study (original-pipeline.md,
failures 1 and 2, across machines).

A study created without the attribute (an older campaign) gets it from the first
machine that checks it: from then on, every other machine must match that one.
"""

from __future__ import annotations

from engine.dataset.spec import DataSpec
from engine.errors import UserError
from engine.storage.queue import PREFIX, CampaignQueue, Entry

S_DATA_SHA256 = PREFIX + "data_sha256"
ACTIVE = ("queued", "paused")


def dataset_key(spec: DataSpec) -> str:
    return f"{spec.dataset}/{spec.tier}/v{spec.version}"


def local_sha256(spec: DataSpec) -> str:
    """The sha256 of this machine's copy, re-hashed (an embedded sample is built first)."""
    from engine.dataset.build import ensure_dataset
    from engine.dataset.manifest import file_problem

    entry = ensure_dataset(spec.dataset, spec.tier, spec.version)
    problem = file_problem(f"dataset {entry.key}", entry.file(), entry.sha256)
    if problem:
        raise UserError(
            problem,
            hint=f"rebuild it: hpotui data build --ticker {spec.dataset} --tier {spec.tier} "
            f"--version {spec.version} --force",
        )
    return entry.sha256


def record_checksums(queue: CampaignQueue, entries: list[Entry] | None = None) -> None:
    """Store this machine's dataset sha256 with each experiment that has none yet."""
    cache: dict[str, str] = {}
    for entry in entries if entries is not None else queue.entries(with_trials=False):
        if S_DATA_SHA256 in entry_attrs(queue, entry):
            continue
        key = dataset_key(entry.config.data)
        if key not in cache:
            cache[key] = local_sha256(entry.config.data)
        queue.storage.set_study_user_attr(entry.study_id, S_DATA_SHA256, cache[key])


def entry_attrs(queue: CampaignQueue, entry: Entry) -> dict[str, object]:
    return dict(queue.storage.get_study_user_attrs(entry.study_id))


def check_same_data(
    queue: CampaignQueue, checked: dict[str, str] | None = None, *, only_active: bool = True
) -> list[str]:
    """Compare this machine's datasets with the campaign's; raise UserError on the first
    mismatch (one line naming dataset, experiment and both checksums). Returns one line
    per dataset hashed; `checked` (dataset key -> sha256) carries what was hashed
    before, so a later call hashes only datasets new to this machine."""
    checked = {} if checked is None else checked
    lines: list[str] = []
    for entry in queue.entries(with_trials=False):
        if only_active and entry.stored_state not in ACTIVE:
            continue
        spec = entry.config.data
        key = dataset_key(spec)
        if key not in checked:
            checked[key] = local_sha256(spec)
            lines.append(f"dataset {key}: sha256 {checked[key][:12]}")
        expected = entry_attrs(queue, entry).get(S_DATA_SHA256)
        if expected is None:
            record_checksums(queue, [entry])
            continue
        if expected != checked[key]:
            raise UserError(
                f"this machine's copy has sha256 {checked[key][:12]}, the campaign was "
                f"created with {str(expected)[:12]} (experiment {entry.name})",
                where=f"dataset {key}",
                hint="copy the file listed in data/manifests/processed.json from the "
                "machine that created the campaign, then run `hpotui data verify`",
            )
    return lines
