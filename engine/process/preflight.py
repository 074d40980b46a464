"""Pre-flight: check a whole campaign before any training starts.

The reference pipeline found a wrong data path, mismatched feature columns, horizons
that never reached the labels and an 18-sample validation split hours into a run
(original-pipeline.md, items 1-3, 5, 6, 11). Here every experiment is checked up front:
dataset in the manifest with a matching checksum, the tier's columns, labels and split
sizes for its horizon, a non-empty architecture grid and its extremes, the memory of its
largest architecture on its device, the storage and the outputs folder. Every problem is
collected; `raise_if_problems` raises them together (exit 2).

Pre-flight only reads. The one exception: an embedded sample dataset is built on demand
(`ensure_dataset`), as any command using it would. Storage and outputs are never touched.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from engine import paths
from engine.campaign.causes import grid_cause, split_cause
from engine.campaign.config import Locations, load_located
from engine.campaign.design_checks import design_warnings
from engine.campaign.model import Campaign, ExperimentConfig
from engine.campaign.problems import KeyProblems
from engine.campaign.space_checks import dead_ranges, values_of
from engine.dataset.spec import DataSpec
from engine.dataset.splits import SplitFacts
from engine.errors import UserError, UserErrors
from engine.model.architecture import Architecture
from engine.storage import journal_check
from engine.storage.backend import (
    STORAGE_ENV,
    check_storage,
    default_storage_url,
    is_journal,
    journal_path,
    mask_url,
)

MIN_FREE_BYTES = 256 * 2**20  # journal, logs and trial tables of a campaign fit easily


@dataclass
class PreflightReport:
    """What pre-flight found. `problems` stop the campaign; the rest is information.

    `excluded` names experiments of which no architecture fits the device (the engine
    skips them); `excluded_architectures[experiment]` lists the architectures the engine
    must not sample because even micro-batch 1 does not fit.
    """

    problems: list[UserError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    excluded_architectures: dict[str, tuple[Architecture, ...]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    storage_url: str = ""
    journal: journal_check.JournalScan | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, error: UserError) -> None:
        if str(error) not in {str(p) for p in self.problems}:
            self.problems.append(error)

    def raise_if_problems(self) -> None:
        if self.problems:
            raise UserErrors(self.problems)


def run_preflight(
    campaign: Campaign,
    storage_url: str | None = None,
    *,
    min_free_bytes: int = MIN_FREE_BYTES,
    memory_limit_bytes: int | None = None,
) -> PreflightReport:
    """Check every experiment of `campaign` and its storage and outputs; start nothing.

    `memory_limit_bytes` caps the memory a trial may use (default: what the device has
    available now), as `RunOptions.memory_limit_bytes` does for the trainer.
    """
    report = PreflightReport()
    url = storage_url or campaign.storage or default_storage_url(campaign.name)
    report.storage_url = url
    locations = _locations(campaign)
    if storage_url:
        from_env = os.environ.get(STORAGE_ENV) == storage_url
        storage_where = f"${STORAGE_ENV}" if from_env else "--storage"
    elif campaign.storage and locations is not None:
        storage_where = ": ".join(locations.key_where(("campaign", "storage")))
    else:
        storage_where = "storage"
    _check_places(campaign, url, storage_where, min_free_bytes, report)
    checker = _Checker(campaign, report, locations, memory_limit_bytes)
    for experiment in campaign.experiments:
        checker.experiment(experiment)
    checker.flush()
    report.warnings += design_warnings(campaign)
    if campaign.experiments and len(report.excluded) == len(campaign.experiments):
        report.problem(
            UserError("no experiment fits this machine's memory", where=_shown(campaign.path))
        )
    return report


def _check_places(
    campaign: Campaign, url: str, storage_where: str, min_free: int, report: PreflightReport
) -> None:
    report.lines.append(f"campaign {campaign.name}: {len(campaign.experiments)} experiment(s)")
    report.lines.append(f"storage: {mask_url(url)}")
    folder = paths.outputs_dir() / campaign.name
    outputs = _outputs_problem(folder, min_free)
    problem = check_storage(url)
    inside = is_journal(url) and journal_path(url).is_relative_to(folder)
    if problem and not (outputs and inside):  # else the outputs' line says it, once
        report.problem(UserError(problem, where=storage_where))
    elif not problem and is_journal(url) and journal_path(url).is_file():
        _check_journal(journal_path(url), report)
    report.lines.append(f"outputs: {folder}")
    if outputs:
        report.problem(outputs)


def _outputs_problem(folder: Path, min_free: int) -> UserError | None:
    """Why `outputs/<campaign>/` cannot be written, if it cannot."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return UserError(f"{existing} is a file, expected a folder", where="outputs")
    if not os.access(existing, os.W_OK | os.X_OK):
        return UserError(
            f"{existing} is not writable, so {folder} cannot be written",
            where="outputs",
            hint="fix its permissions or set $HPOTUI_HOME to a writable workspace",
        )
    free = shutil.disk_usage(existing).free
    if free < min_free:
        return UserError(
            f"only {_size(free)} free on the disk of {existing}, need {_size(min_free)}",
            where="outputs",
            hint="free some disk space",
        )
    return None


def _check_journal(path: Path, report: PreflightReport) -> None:
    """Read the whole journal: a damaged middle stops the run, a torn tail is cut on open."""
    found = journal_check.scan(path)
    report.lines.append(f"journal: {found.records} record(s), {_size(found.size)}")
    if found.damaged_at is not None:
        report.problem(found.damaged_error())
    report.journal = found  # a torn tail is cut (and said) by the engine's open


class _Checker:
    """Per-experiment checks, with the expensive parts cached across experiments."""

    def __init__(
        self,
        campaign: Campaign,
        report: PreflightReport,
        locations: Locations | None,
        memory_limit: int | None,
    ) -> None:
        self.memory_limit = memory_limit
        self.campaign = campaign
        self.report = report
        self.locations = locations
        self.frames: dict[tuple[str, str, int], pd.DataFrame | UserError] = {}
        self.splits: dict[DataSpec, SplitFacts | UserError] = {}
        self.split_owner: dict[DataSpec, str] = {}  # the first experiment of each data spec
        self.dead: dict[str, list[str]] = {}  # dead-range warning -> experiments
        self.devices: dict[str, torch.device | UserError] = {}
        self.failed = KeyProblems(len(campaign.experiments))
        self.data_failed: dict[str, str] = {}  # experiment -> the key its data check named

    def fail(self, experiment: str, key: str, error: UserError | str) -> None:
        """Record a problem at the config line of `key` of `experiment`.

        The error's own `where` is kept only when it adds something (a dataset's name);
        one that just names the key again ("split.min_val_windows", "budget") is dropped.
        The problem of several experiments at one key is one line naming them all: the
        key is what the user changes, once (`flush`).
        """
        if self.locations is None:
            where, dotted = str(self.campaign.path), key
        else:
            where, dotted = self.locations.where(experiment, key)
        if isinstance(error, UserError):
            own = error.where or ""
            redundant = own.split(".")[0] in ("split", "data", "labels", "device", "budget", "grid")
            message = error.message if redundant or not own else f"{own}: {error.message}"
            text = message + (f" ({error.hint})" if error.hint else "")
        else:
            text = error
        self.failed.add(f"{where}: {dotted}", experiment, text)

    def flush(self) -> None:
        """Turn the recorded problems into the report's errors, one line per key."""
        for error in self.failed.errors():
            self.report.problem(error)
        for text, names in self.dead.items():
            self.report.warnings.append(f"{', '.join(names)}: {text}")

    def experiment(self, exp: ExperimentConfig) -> None:
        n_features = self.n_features(exp)  # an unknown tier is reported once, here
        frame = self.dataset(exp) if n_features else None
        facts = self.data_splits(exp, frame) if frame is not None else None
        if facts is not None:  # one warning per dead range, naming its experiments
            for text in dead_ranges(exp, facts.get("train").size):
                self.dead.setdefault(text, []).append(exp.name)
        # a context longer than the data also leaves no architecture within the budget
        # (the head grows with it): said once, at context_len
        shape_failed = self.data_failed.get(exp.name) == "context_len"
        grid = self.grid(exp, n_features) if n_features and not shape_failed else None
        device = self.device(exp)
        if grid and device is not None and n_features:
            self.memory(exp, grid, n_features, device)
        if exp.timeout_s is not None:
            self.report.lines.append(f"{exp.name}: timeout {exp.timeout_s:g} s per study")

    def dataset(self, exp: ExperimentConfig) -> pd.DataFrame | None:
        from engine.dataset.build import ensure_dataset
        from engine.dataset.features import tier_columns
        from engine.dataset.manifest import load_processed

        data = exp.data
        key = (data.dataset, data.tier, data.version)
        if key not in self.frames:
            try:
                entry = ensure_dataset(*key)
                missing = [c for c in tier_columns(data.tier) if c not in entry.columns]
                if missing:
                    raise UserError(
                        f"dataset {entry.key} lacks feature column(s) {', '.join(missing)} "
                        f"of tier {data.tier}",
                        hint=f"rebuild it: hpotui data build --ticker {data.dataset} "
                        f"--tier {data.tier} --version {data.version + 1}",
                    )
                frame, entry = load_processed(*key, verify=True)
                self.frames[key] = frame
                self.report.lines.append(
                    f"dataset {entry.key}: {entry.rows} rows {entry.start} .. {entry.end}, "
                    f"{len(entry.columns)} features, sha256 {entry.sha256[:12]} verified"
                )
            except UserError as error:
                self.frames[key] = error
        found = self.frames[key]
        if isinstance(found, UserError):
            self.fail(exp.name, "dataset", found)
            return None
        return found

    def data_splits(self, exp: ExperimentConfig, frame: pd.DataFrame) -> SplitFacts | None:
        from engine.dataset.splits import split_facts

        first = exp.data not in self.splits
        if first:
            try:
                self.splits[exp.data] = split_facts(frame, exp.data)
            except UserError as error:
                self.splits[exp.data] = error
            self.split_owner[exp.data] = exp.name
        found = self.splits[exp.data]
        if isinstance(found, UserError):
            key = _split_key(found)
            if self.locations is not None:  # a key the user set may be why: name it
                locations = self.locations
                cause = split_cause(
                    key, exp.data, len(frame), lambda k: locations.written(exp.name, k)
                )
                key, found = cause or (key, found)
            self.data_failed[exp.name] = key
            self.fail(exp.name, key, found)
            return None
        if not first:  # same data spec: same facts, said once
            self.report.lines.append(f"{exp.name}: splits as {self.split_owner[exp.data]}")
            return found
        sizes = " / ".join(f"{info.name} {info.size}" for info in found.splits)
        rates = " / ".join(f"{info.label_rate:.2f}" for info in found.splits if info.size)
        self.report.lines.append(
            f"{exp.name}: h{exp.horizon} {exp.task} ({exp.data.labels.price_basis}): "
            f"windows {sizes}, label rate {rates}; {exp.data.normalization} normalization, "
            f"{found.gap} windows between splits"
        )
        self.report.lines += [f"  {line}" for line in found.lines()]
        self.report.warnings += [f"{exp.name}: {drift}" for drift in found.drifts()]
        train = found.get("train")
        if train.label_rate in (0.0, 1.0):
            self.fail(
                exp.name,
                "task",
                f"every training label is {int(train.label_rate)} at horizon {exp.horizon}: "
                "nothing to learn; pick another threshold",
            )
        return found

    def n_features(self, exp: ExperimentConfig) -> int:
        from engine.dataset.features import tier_columns

        try:
            return len(tier_columns(exp.data.tier))
        except UserError as error:
            self.fail(exp.name, "tier", error)
            return 0

    def grid(self, exp: ExperimentConfig, n_features: int) -> list[Any] | None:
        from engine.model.grid import architecture_grid, extremes, format_count

        data = exp.data
        spec = exp.grid
        if not any(d % h == 0 for d in spec.d_model for h in spec.n_heads):
            # else reported as "no architecture within the budget", which hides why
            heads, widths = list(spec.n_heads), list(spec.d_model)
            self.fail(
                exp.name,
                "architecture.n_heads",
                UserError(
                    f"no value of n_heads {heads} divides a value of d_model {widths}, so "
                    "there is no architecture at all",
                    hint="attention splits d_model across heads: pick n_heads dividing d_model",
                ),
            )
            return None
        try:
            grid = architecture_grid(
                exp.budget, n_features, exp.grid, data.context_len, data.patch_len, data.stride
            )
        except UserError as error:
            found: tuple[str, UserError] = ("budget", error)
            if self.locations is not None:  # a value list the user set may be why
                locations = self.locations
                written = lambda k: locations.written(exp.name, k)  # noqa: E731
                found = grid_cause(exp, n_features, error, written) or found
            self.fail(exp.name, *found)
            return None
        edges = extremes(grid, exp.budget)
        self.report.lines.append(
            f"{exp.name}: budget {exp.budget}: {len(grid)} architectures "
            f"({format_count(grid[0].n_params)} .. {format_count(grid[-1].n_params)}), "
            f"{len(edges)} extremes" + ("" if exp.forced_extremes else " (not forced)")
        )
        if exp.forced_extremes and len(edges) > exp.n_trials:
            self.report.warnings.append(
                f"{exp.name}: only {exp.n_trials} of its {len(edges)} extremes run "
                f"(n_trials {exp.n_trials})"
            )
        return grid

    def device(self, exp: ExperimentConfig) -> torch.device | None:
        from engine.train.device import resolve_device

        if exp.device not in self.devices:
            try:
                self.devices[exp.device] = resolve_device(exp.device)
            except UserError as error:
                self.devices[exp.device] = error
        found = self.devices[exp.device]
        if isinstance(found, UserError):
            self.fail(exp.name, "device", found)
            return None
        return found

    def memory(
        self, exp: ExperimentConfig, grid: list[Any], n_features: int, device: torch.device
    ) -> None:
        from engine.train.device import training_dtype
        from engine.train.memory import SAFETY, available_memory_bytes, estimate_peak_bytes

        try:
            dtype = training_dtype(device, exp.precision) or torch.float32
        except UserError as error:
            self.fail(exp.name, "precision", error)
            return
        data = exp.data

        def peak(arch: Architecture, batch: int) -> int:
            return estimate_peak_bytes(
                arch,
                n_features,
                batch,
                context_len=data.context_len,
                patch_len=data.patch_len,
                stride=data.stride,
                dtype=dtype,
                device_type=device.type,
            )

        available = available_memory_bytes(device)
        if self.memory_limit is not None:
            available = min(available, self.memory_limit)
        budget = int(available * SAFETY)
        batch = _largest_batch(exp)
        largest = max(grid, key=lambda entry: peak(entry.arch, batch))
        need = peak(largest.arch, batch)
        verdict = "fits" if need <= budget else "needs micro-batches"
        excluded = tuple(e.arch for e in grid if peak(e.arch, 1) > budget)
        if len(excluded) == len(grid):
            verdict = "does not fit even at batch 1"
        self.report.lines.append(
            f"{exp.name}: largest {largest.arch.label} ~{_size(need)} at batch {batch} "
            f"vs {_size(budget)} usable on {device}: {verdict}"
        )
        if len(excluded) == len(grid):
            self.report.excluded.append(exp.name)
            self.report.warnings.append(
                f"{exp.name}: excluded: no architecture of budget {exp.budget} fits "
                f"{_size(budget)} on {device} (smallest needs ~{_size(peak(grid[0].arch, 1))})"
            )
        elif excluded:
            self.report.excluded_architectures[exp.name] = excluded
            self.report.warnings.append(
                f"{exp.name}: {len(excluded)} of {len(grid)} architectures excluded: they do "
                f"not fit {_size(budget)} on {device} even at batch 1"
            )


def _largest_batch(exp: ExperimentConfig) -> int:
    return max(int(b) for b in values_of(exp, "batch_size") if b is not None)


def _split_key(error: UserError) -> str:
    """The config key a data error is about ("split.min_val_windows", "context_len")."""
    where = error.where or ""
    if where.startswith("split"):
        return where
    if where.startswith("data."):
        return where[len("data.") :]
    if where.startswith("labels."):
        return where[len("labels.") :]
    return "dataset"


def _locations(campaign: Campaign) -> Locations | None:
    """Where each key is written, re-read from the campaign's file (None if unreadable)."""
    try:
        loaded, locations = load_located(Path(_shown(campaign.path)))
    except (UserError, OSError):
        return None
    return locations if loaded.name == campaign.name else None


def _shown(path: Path) -> str:
    """A path as a user would type it: relative to the current folder when inside it."""
    path = Path(path)
    return str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"
