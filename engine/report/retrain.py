"""Retrain each experiment's top configurations with several seeds and test them once.

The search's best validation loss is biased low by the search that picked it, and which
configuration it picked is itself noise, so the report's honest numbers come from here:
the top k configurations of each experiment (engine/report/collect.py) x seeds.

- Data: the experiment's own DataSpec, train and validation windows together as the
  training set (normalization stays fitted on the training rows only), the test split
  untouched until the single evaluation at the end.
- Parameters: the source trial's TrainParams with `seed` set per run and `epochs` set to
  its best epoch (the search's early stopping picked it on validation), `patience =
  epochs` so nothing stops early. The trainer still keeps the weights of the epoch with
  the lowest loss on the validation windows; those windows are now training data, so in
  effect that is one of the last epochs. The test split never steers it.
  Warmup is capped at RETRAIN_WARMUP_FRACTION (a fifth) of the run's steps.
- Scores: threshold-free only (BCE, ROC-AUC, PR-AUC, Brier; engine/report/scores.py).
  The retrained model trained on the validation windows, so no data is left on which to
  choose it a threshold: precision and recall are not computed for it (the search's
  validation threshold belongs to another model and put 0% to 100% of test windows above
  it across seeds).

Storage: one Optuna study per experiment, `<experiment study>/retrain`, one trial per
(source trial, seed) (value = test BCE), its user attributes holding the seed, the source
study and trial number, the metrics and everything the run used. A run is done when its
trial exists, so an interrupted report resumes where it stopped and a finished one trains
nothing. If more search trials later change the top trials, the new ones are trained
(the old runs stay, tied to their source trial number). The study does not carry the
queue's `hpotui.experiment` attribute, so the engine's queue never takes it for an
experiment.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import torch
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from engine.dataset.windows import PreparedData, WindowSet
from engine.errors import UserError
from engine.report.collect import BestTrial, ExperimentResult
from engine.report.scores import threshold_free
from engine.train.config import RunOptions, TrainParams
from engine.train.schedule import RETRAIN_WARMUP_FRACTION, capped_warmup
from engine.train.trainer import Trainer

RETRAIN_SUFFIX = "/retrain"
S_KIND = "hpotui.report.kind"
S_SOURCE_STUDY = "hpotui.report.source_study"
T_SOURCE_TRIAL = "source_trial"
T_SEED = "seed"
T_TEST_METRICS = "test_metrics"
T_DONE = "hpotui.report.done"  # also on a FAIL trial: that seed diverged, don't rerun it


@dataclass(frozen=True)
class SeedRun:
    """One (configuration, seed) retraining, as stored."""

    seed: int
    trial_number: int  # in the `<study>/retrain` study
    test_metrics: dict[str, float]
    epochs: int
    duration_s: float
    reused: bool  # found in storage, not trained by this call
    source_trial: int = -1  # the search trial whose configuration this is
    n_params: int = 0


def retrain_study_name(study_name: str) -> str:
    return study_name + RETRAIN_SUFFIX


def retrain_params(best: BestTrial, seed: int) -> TrainParams:
    """A search trial's training parameters for one retraining seed (see module doc).

    A trial without stored training parameters can't be retrained faithfully (defaults
    would silently stand in for what the search chose): UserError.
    """
    if not best.train_params:
        raise UserError(
            f"trial {best.number} has no stored train_params: cannot retrain it as it ran",
            where="retrain",
            hint="run the report with --no-retrain, or re-run the experiment",
        )
    params = TrainParams.from_dict(best.train_params)
    epochs = best.best_epoch or params.epochs
    return dataclasses.replace(params, seed=seed, epochs=epochs, patience=epochs)


def train_plus_val(data: PreparedData) -> PreparedData:
    """`data` with the validation windows appended to the training windows."""
    merged = WindowSet(
        name="train+val",
        x=torch.cat([data.train.x, data.val.x]),
        y=torch.cat([data.train.y, data.val.y]),
        days=np.concatenate([data.train.days, data.val.days]),
    )
    return dataclasses.replace(data, train=merged)


def stored_runs(storage: BaseStorage, exp: ExperimentResult) -> dict[tuple[int, int], SeedRun]:
    """Finished runs of the experiment's top trials, by (source trial, seed); the first
    stored run of a pair wins."""
    sources = {t.number: t for t in exp.top}
    if not sources:
        return {}
    try:
        study_id = storage.get_study_id_from_name(retrain_study_name(exp.study_name))
    except KeyError:
        return {}
    runs: dict[tuple[int, int], SeedRun] = {}
    for t in sorted(storage.get_all_trials(study_id, deepcopy=False), key=lambda t: t.number):
        attrs = t.user_attrs
        finished = t.state == TrialState.COMPLETE or (
            t.state == TrialState.FAIL and attrs.get(T_DONE)
        )
        source = attrs.get(T_SOURCE_TRIAL)
        if not finished or source not in sources:
            continue
        key = (int(source), int(attrs[T_SEED]))
        if key not in runs:
            runs[key] = SeedRun(
                seed=key[1],
                trial_number=t.number,
                test_metrics={k: float(v) for k, v in dict(attrs[T_TEST_METRICS]).items()},
                epochs=int(attrs.get("epochs", 0)),
                duration_s=float(attrs.get("duration_s", 0.0)),
                reused=True,
                source_trial=key[0],
                n_params=int(attrs.get("n_params") or sources[key[0]].n_params),
            )
    return runs


def pending(storage: BaseStorage, exp: ExperimentResult, seeds: Sequence[int]) -> int:
    """How many (configuration, seed) runs of `exp` are not stored yet."""
    done = stored_runs(storage, exp)
    return sum((t.number, s) not in done for t in exp.top for s in seeds)


def _study(storage: BaseStorage, exp: ExperimentResult) -> optuna.Study:
    study = optuna.create_study(
        storage=storage,
        study_name=retrain_study_name(exp.study_name),
        direction="minimize",
        load_if_exists=True,
    )
    study.set_user_attr(S_KIND, "retrain")
    study.set_user_attr(S_SOURCE_STUDY, exp.study_name)
    return study


def run_seed(
    storage: BaseStorage,
    exp: ExperimentResult,
    source: BestTrial,
    seed: int,
    data: PreparedData,
    options: RunOptions,
) -> SeedRun:
    """Train `source`'s configuration with `seed` on train+val, test it once, store it."""
    params = retrain_params(source, seed)
    merged = train_plus_val(data)
    steps = params.epochs * (len(merged.train) // min(params.batch_size, len(merged.train)))
    warmup = capped_warmup(params.warmup_steps, steps, RETRAIN_WARMUP_FRACTION)
    params = dataclasses.replace(params, warmup_steps=warmup)
    started = time.perf_counter()
    trainer = Trainer(source.architecture, params, merged, options)
    result = trainer.run()
    logits = trainer.predict(data.test).double().cpu().numpy()
    labels = data.test.y.double().cpu().numpy()
    metrics = threshold_free(logits, labels)
    duration = time.perf_counter() - started
    attrs: dict[str, Any] = {
        T_SEED: seed,
        T_SOURCE_TRIAL: source.number,
        "source_study": exp.study_name,
        T_TEST_METRICS: metrics,
        "threshold_source": "none: the model trained on the validation windows",
        "epochs": params.epochs,
        "train_params": params.to_dict(),
        "architecture": source.architecture.to_dict(),
        "n_params": result.n_params,
        "train_windows": len(merged.train),
        "test_windows": len(data.test),
        "train_loss_last": result.curve[-1].train_loss if result.curve else float("nan"),
        "duration_s": duration,
        "device": result.device,
        "data": data.summary(),
        T_DONE: True,
    }
    bce = metrics["bce"]
    finite = bool(np.isfinite(bce))
    trial = optuna.trial.create_trial(
        state=TrialState.COMPLETE if finite else TrialState.FAIL,
        value=bce if finite else None,
        user_attrs=_json_ready(attrs),
    )
    study = _study(storage, exp)
    trial_id = storage.create_new_trial(study._study_id, template_trial=trial)
    number = storage.get_trial_number_from_id(trial_id)
    return SeedRun(
        seed, number, metrics, params.epochs, duration, False, source.number, result.n_params
    )


def retrain_experiment(
    storage: BaseStorage,
    exp: ExperimentResult,
    seeds: Sequence[int],
    load_data: Callable[[], PreparedData],
    options: RunOptions,
    on_seed: Callable[[ExperimentResult, SeedRun], None] | None = None,
) -> list[SeedRun]:
    """Every (top configuration, seed) of `exp`: stored runs reused, the rest trained.

    `load_data` is called only when some run still has to be trained.
    """
    done = stored_runs(storage, exp)
    runs: list[SeedRun] = []
    for source in exp.top:
        for seed in seeds:
            key = (source.number, seed)
            if key not in done:
                done[key] = run_seed(storage, exp, source, seed, load_data(), options)
            runs.append(done[key])
            if on_seed is not None:
                on_seed(exp, done[key])
    return runs


def _json_ready(value: Any) -> Any:
    """Plain Python values for storage attributes (Optuna stores them as JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
