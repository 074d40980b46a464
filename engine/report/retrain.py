"""Retrain each experiment's top configurations, per test period and seed, test once.

The search's best validation loss is biased low by the search that picked it, and which
configuration it picked is itself noise, so the report's honest numbers come from here:
the top k configurations of each experiment (engine/report/collect.py) x seeds x the
walk-forward test periods (engine/dataset/periods.py).

- Data: the experiment's own DataSpec, one period at a time: trained on every window
  before the period's test block (less the embargo), stopped early on the last part of
  that span, tested once on the block. Period 1 is the search's own split. The test
  block never steers anything.
- Parameters: the source trial's TrainParams exactly as the search sampled them, with
  `seed` set per run: the same epochs and patience, stopping on the period's
  early-stopping windows by the experiment's objective, the best epoch's weights kept.
- Scores: threshold-free only (BCE, ROC-AUC, PR-AUC, Brier; engine/report/scores.py),
  and every test window's predicted probability (`test_probs`, with `test_days`), which
  the paired comparison with the baselines needs (engine/report/compare.py).

Storage: one Optuna study per experiment, `<experiment study>/retrain`, one trial per
(source trial, seed, period) (value = test BCE), its user attributes holding all of the
above and everything the run used. A run is done when its trial exists, so an
interrupted report resumes where it stopped and a finished one trains nothing. Runs of
the earlier scheme (train+validation for the best epoch, one test split, no
probabilities; no `scheme` attribute) stay in the study but are not read. The study
does not carry the queue's `hpotui.experiment` attribute, so the engine's queue never
takes it for an experiment.

`RetrainTask` is what one run needs, as plain values, so it can train in another
process (engine/report/pool.py); `run_task` trains it; `store_run` stores the result.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from engine.dataset.spec import DataSpec
from engine.dataset.windows import PreparedData
from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.report.collect import BestTrial, ExperimentResult
from engine.report.scores import threshold_free
from engine.train.config import RunOptions, TrainParams

RETRAIN_SUFFIX = "/retrain"
S_KIND = "hpotui.report.kind"
S_SOURCE_STUDY = "hpotui.report.source_study"
T_SOURCE_TRIAL = "source_trial"
T_SEED = "seed"
T_PERIOD = "period"
T_SCHEME = "scheme"
SCHEME = "walk-forward"
T_TEST_METRICS = "test_metrics"
T_TEST_PROBS = "test_probs"
T_TEST_DAYS = "test_days"
T_DONE = "hpotui.report.done"  # also on a FAIL trial: that seed diverged, don't rerun it
PROB_DIGITS = 6  # stored probabilities: enough for a BCE to 1e-6


@dataclass(frozen=True)
class SeedRun:
    """One (configuration, seed, period) retraining, as stored."""

    seed: int
    trial_number: int  # in the `<study>/retrain` study
    test_metrics: dict[str, float]
    epochs: int  # epochs run (early stopping may end it before the trial's epochs)
    duration_s: float
    reused: bool  # found in storage, not trained by this call
    source_trial: int = -1  # the search trial whose configuration this is
    n_params: int = 0
    period: int = 1
    best_epoch: int = 0
    test_probs: tuple[float, ...] = ()
    test_days: tuple[int, ...] = ()


@dataclass(frozen=True)
class RetrainTask:
    """One run to train, as plain values (picklable for a worker process)."""

    experiment: str
    spec: dict[str, Any]  # DataSpec.to_dict()
    period: int
    source_trial: int
    seed: int
    architecture: dict[str, int]
    params: dict[str, Any]  # TrainParams.to_dict() with the seed set
    options: dict[str, Any] = field(default_factory=dict)  # RunOptions.to_dict()

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.source_trial, self.seed, self.period)

    def data_spec(self) -> DataSpec:
        return DataSpec.from_dict(self.spec)


def retrain_study_name(study_name: str) -> str:
    return study_name + RETRAIN_SUFFIX


def retrain_params(best: BestTrial, seed: int) -> TrainParams:
    """A search trial's training parameters for one retraining seed (module doc).

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
    return TrainParams.from_dict({**params.to_dict(), "seed": seed})


def tasks_for(
    exp: ExperimentResult, seeds: list[int], periods: list[int], options: RunOptions
) -> list[RetrainTask]:
    """Every (period, configuration, seed) run of `exp`, in that order."""
    spec = exp.config.data.to_dict()
    return [
        RetrainTask(exp.name, spec, period, source.number, seed, source.architecture.to_dict(),
                    retrain_params(source, seed).to_dict(), asdict(options))
        for period in periods
        for source in exp.top
        for seed in seeds
    ]  # fmt: skip


def run_task(task: RetrainTask, data: PreparedData) -> dict[str, Any]:
    """Train one run on its period's data and test it once: the attributes to store."""
    from engine.train.trainer import Trainer

    params = TrainParams.from_dict(task.params)
    options = RunOptions(**{**task.options, "dropout_sites": tuple(task.options.get(
        "dropout_sites", RunOptions().dropout_sites))})  # fmt: skip
    started = time.perf_counter()
    trainer = Trainer(Architecture.from_dict(task.architecture), params, data, options)
    result = trainer.run()
    logits = trainer.predict(data.test).double().cpu().numpy()
    labels = data.test.y.double().cpu().numpy()
    probs = 1.0 / (1.0 + np.exp(-logits))
    return {
        T_SEED: task.seed,
        T_SOURCE_TRIAL: task.source_trial,
        T_PERIOD: task.period,
        T_SCHEME: SCHEME,
        T_TEST_METRICS: threshold_free(logits, labels),
        T_TEST_PROBS: [round(float(p), PROB_DIGITS) for p in probs],
        T_TEST_DAYS: [int(d) for d in data.test.days],
        "threshold_source": "none: threshold-free scores only",
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "early_stop_value": result.value,
        "train_params": params.to_dict(),
        "architecture": task.architecture,
        "n_params": result.n_params,
        "train_windows": len(data.train),
        "early_stop_windows": len(data.val),
        "test_windows": len(data.test),
        "duration_s": time.perf_counter() - started,
        "device": result.device,
        "data": data.summary(),
        T_DONE: True,
    }


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


def store_run(storage: BaseStorage, exp: ExperimentResult, attrs: dict[str, Any]) -> SeedRun:
    """Store one trained run (`run_task`'s attributes) as a trial; a non-finite test BCE
    is a FAIL trial, still marked done (that seed diverged: don't rerun it)."""
    bce = float(attrs[T_TEST_METRICS]["bce"])
    finite = bool(np.isfinite(bce))
    trial = optuna.trial.create_trial(
        state=TrialState.COMPLETE if finite else TrialState.FAIL,
        value=bce if finite else None,
        user_attrs=_json_ready({**attrs, "source_study": exp.study_name}),
    )
    study = _study(storage, exp)
    trial_id = storage.create_new_trial(study._study_id, template_trial=trial)
    return _seed_run(storage.get_trial_number_from_id(trial_id), attrs, False)


def _seed_run(number: int, attrs: dict[str, Any], reused: bool) -> SeedRun:
    return SeedRun(
        seed=int(attrs[T_SEED]),
        trial_number=number,
        test_metrics={k: float(v) for k, v in dict(attrs[T_TEST_METRICS]).items()},
        epochs=int(attrs.get("epochs", 0)),
        duration_s=float(attrs.get("duration_s", 0.0)),
        reused=reused,
        source_trial=int(attrs[T_SOURCE_TRIAL]),
        n_params=int(attrs.get("n_params") or 0),
        period=int(attrs.get(T_PERIOD, 1)),
        best_epoch=int(attrs.get("best_epoch") or 0),
        test_probs=tuple(float(p) for p in attrs.get(T_TEST_PROBS, ())),
        test_days=tuple(int(d) for d in attrs.get(T_TEST_DAYS, ())),
    )


def stored_runs(storage: BaseStorage, exp: ExperimentResult) -> dict[tuple[int, int, int], SeedRun]:
    """Finished runs of the experiment's top trials by (source trial, seed, period); the
    first stored run of a key wins; runs of the earlier scheme are not read."""
    sources = {t.number: t for t in exp.top}
    if not sources:
        return {}
    try:
        study_id = storage.get_study_id_from_name(retrain_study_name(exp.study_name))
    except KeyError:
        return {}
    runs: dict[tuple[int, int, int], SeedRun] = {}
    for t in sorted(storage.get_all_trials(study_id, deepcopy=False), key=lambda t: t.number):
        attrs = t.user_attrs
        finished = t.state == TrialState.COMPLETE or (
            t.state == TrialState.FAIL and attrs.get(T_DONE)
        )
        if not finished or attrs.get(T_SCHEME) != SCHEME:
            continue
        if attrs.get(T_SOURCE_TRIAL) not in sources:
            continue
        run = _seed_run(t.number, attrs, True)
        if not run.n_params:
            run = SeedRun(**{**asdict(run), "n_params": sources[run.source_trial].n_params})
        runs.setdefault((run.source_trial, run.seed, run.period), run)
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
