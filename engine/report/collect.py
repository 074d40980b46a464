"""What a campaign's storage holds for the report: each experiment and its top trials.

The report retrains the top `k` configurations of each experiment, not only the best:
which configuration the search happened to pick is a source of noise at each size, and
the trend's interval must see it (engine/report/trend.py). The top `k` are the best
trials by the experiment's objective (validation BCE, or 1 - ROC-AUC under
objective = "val_auc") with distinct architectures where the search tried that many;
otherwise the next best trials of an architecture already taken fill the list (other
training parameters, still another configuration).

Everything is read from the storage through the engine's queue (`engine.storage.queue`), never
from a config file: each study carries the resolved config it ran with, so the report
describes what actually ran. The trial attributes read here are the ones
`engine.worker.trial_loop` writes: `architecture`, `n_params`, `train_params`, `metrics` (validation
metrics of the best epoch) and `best_epoch`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from engine.campaign.model import ExperimentConfig, ReportSpec
from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.storage.backend import is_journal, journal_path, mask_url, open_storage
from engine.storage.queue import CampaignQueue, Entry


@dataclass(frozen=True)
class BestTrial:
    """One of the search's top complete trials of an experiment (lowest objective)."""

    number: int  # Optuna trial number in the experiment's study
    value: float  # the objective the search minimised: validation BCE, or 1 - ROC-AUC
    val_bce: float  # its validation BCE whatever the objective: biased low by the search
    architecture: Architecture
    n_params: int
    train_params: dict[str, Any]
    best_epoch: int | None
    val_metrics: dict[str, float]

    @property
    def val_threshold(self) -> float | None:
        """The best-F1 threshold the trainer chose on validation, if recorded."""
        value = self.val_metrics.get("threshold_best_f1")
        return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class ExperimentResult:
    """One experiment of the campaign as stored."""

    name: str
    study_name: str
    state: str
    config: ExperimentConfig
    n_trials: int
    n_complete: int
    best: BestTrial | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    top: tuple[BestTrial, ...] = ()  # best first; top[0] is `best`

    @property
    def budget(self) -> str:
        return self.config.budget

    @property
    def horizon(self) -> int:
        return self.config.horizon


def open_existing_storage(url: str) -> BaseStorage:
    """The storage at `url`, refusing to create a journal or SQLite file that is not
    there (a report never creates a storage)."""
    missing = _missing_file(url)
    if missing is not None:
        raise UserError(
            f"no campaign results at {missing}",
            where="storage",
            hint="run the campaign first (hpotui --batch CONFIG), or pass --storage URL",
        )
    try:
        return open_storage(url)
    except UserError:  # a damaged journal says so itself (engine/storage/journal_check.py)
        raise
    except Exception as error:  # any backend failure is the user's URL or server
        first = str(error).strip().splitlines()
        raise UserError(
            f"cannot open storage {mask_url(url)}: {mask_url(first[0]) if first else error}",
            where="storage",
        ) from None


def _missing_file(url: str) -> Path | None:
    if is_journal(url):
        path = journal_path(url)
        return None if path.is_file() else path
    if url.lower().startswith("sqlite:///"):
        database = Path(url[len("sqlite:///") :].split("?")[0])
        return None if database.is_file() else database
    return None


DEFAULT_TOP_K = 3


def collect(
    storage: BaseStorage, campaign: str, top_k: int = DEFAULT_TOP_K
) -> list[ExperimentResult]:
    """Every active experiment of `campaign`, in queue order, with its top trials."""
    entries = CampaignQueue(storage, campaign).entries()
    if not entries:
        raise UserError(
            f"campaign {campaign!r} has no experiments in this storage",
            where="storage",
            hint="check the campaign name and --storage, or run the campaign first",
        )
    return [_result(entry, top_k) for entry in entries]


def top_trials(trials: list[FrozenTrial], k: int) -> list[FrozenTrial]:
    """The k best trials (lowest value), distinct architectures first (module doc)."""
    ranked = sorted(trials, key=lambda t: (float(t.value or math.inf), t.number))
    chosen: list[FrozenTrial] = []
    seen: set[str] = set()
    for t in ranked:
        label = repr(sorted(t.user_attrs["architecture"].items()))
        if label not in seen and len(chosen) < k:
            chosen.append(t)
            seen.add(label)
    for t in ranked:
        if len(chosen) >= k:
            break
        if t not in chosen:
            chosen.append(t)
    return sorted(chosen, key=lambda t: (float(t.value or math.inf), t.number))


def _result(entry: Entry, top_k: int = DEFAULT_TOP_K) -> ExperimentResult:
    complete = [t for t in entry.trials if t.state == TrialState.COMPLETE]
    usable = [t for t in complete if _usable(t)]
    notes: list[str] = []
    if len(usable) < len(complete):
        notes.append(f"{len(complete) - len(usable)} complete trial(s) lack stored attributes")
    top = [_best(t) for t in top_trials(usable, max(top_k, 1))]
    return ExperimentResult(
        name=entry.name,
        study_name=entry.study_name,
        state=entry.state,
        config=entry.config,
        n_trials=entry.config.n_trials,
        n_complete=len(complete),
        best=top[0] if top else None,
        notes=tuple(notes),
        top=tuple(top),
    )


def _usable(t: FrozenTrial) -> bool:
    attrs = t.user_attrs
    return (
        t.value is not None
        and math.isfinite(t.value)
        and isinstance(attrs.get("architecture"), dict)
        and "n_params" in attrs
    )


def _best(t: FrozenTrial) -> BestTrial:
    attrs = t.user_attrs
    best_epoch = attrs.get("best_epoch")
    metrics = {k: float(v) for k, v in dict(attrs.get("metrics", {})).items()}
    # the value is the BCE the search saw unless the objective was another (trials from
    # before the objective was stored ran with val_bce)
    val_bce = t.value
    if attrs.get("objective", "val_bce") != "val_bce":
        val_bce = attrs.get("val_bce", metrics.get("bce", math.nan))
    return BestTrial(
        number=t.number,
        value=float(t.value),  # type: ignore[arg-type]
        val_bce=float(val_bce),  # type: ignore[arg-type]
        architecture=Architecture.from_dict(attrs["architecture"]),
        n_params=int(attrs["n_params"]),
        train_params=dict(attrs.get("train_params", {})),
        best_epoch=int(best_epoch) if best_epoch else None,
        val_metrics=metrics,
    )


def campaign_of(target: str | None) -> tuple[str, str | None, ReportSpec]:
    """(campaign name, storage URL from its config or None, its [report] settings) for a
    CLI argument that is a config file or a campaign name (None: the default config; a
    bare name: the default settings)."""
    from engine import paths
    from engine.campaign.config import load_campaign

    if target is None:
        path = paths.default_config()
    elif target.endswith(".toml") or Path(target).is_file():
        path = Path(target)
    else:
        return target, None, ReportSpec()  # a campaign name: the rest from the storage
    if not path.is_file():
        raise UserError(f"no such config file: {path}", where="report")
    campaign = load_campaign(path)
    return campaign.name, campaign.storage, campaign.report
