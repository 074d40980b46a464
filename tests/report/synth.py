"""Synthetic market frames and synthetic campaigns written into a real Optuna journal
storage the way the engine writes them, for the report tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from market_data import random_ohlcv
from optuna.storages import BaseStorage

from engine.campaign.model import ExperimentConfig
from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec
from engine.dataset.windows import PreparedData, prepare_data
from engine.model.architecture import Architecture
from engine.report.retrain import (
    S_KIND,
    S_SOURCE_STUDY,
    SCHEME,
    T_DONE,
    T_PERIOD,
    T_SCHEME,
    T_SEED,
    T_SOURCE_TRIAL,
    T_TEST_DAYS,
    T_TEST_METRICS,
    T_TEST_PROBS,
    retrain_study_name,
)
from engine.storage.backend import default_storage_url, open_storage
from engine.storage.queue import CampaignQueue

CPU = torch.device("cpu")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def ohlcv(n: int = 700, seed: int = 0, signal: bool = False) -> pd.DataFrame:
    """A random-walk OHLCV frame. `signal=True` adds a column holding tomorrow's high
    return: a feature that (illegally, on purpose) predicts the 1-day label."""
    frame = random_ohlcv(n, seed)
    if signal:
        high, close = frame["High"].to_numpy(), frame["Close"].to_numpy()
        ahead = np.append(high[1:] / close[:-1] - 1, 0.0)
        frame["Signal"] = ahead
    return frame


def data_spec(horizon: int = 1, dataset: str = "SP500", periods: int = 1) -> DataSpec:
    return DataSpec(
        dataset=dataset,
        context_len=20,
        patch_len=5,
        stride=5,
        labels=LabelSpec(horizon=horizon),
        split=SplitSpec(min_val_windows=40, test_periods=periods),
    )


def prepared(horizon: int = 1, n: int = 700, signal: bool = False) -> PreparedData:
    return prepare_data(ohlcv(n, signal=signal), data_spec(horizon), CPU)


def budget_label(n: int) -> str:
    return f"{n // 1000}K" if n < 10**6 else f"{n // 10**6}M"


class SyntheticCampaign:
    """A campaign written into a real journal storage: studies created through the
    engine's queue, trials carrying the attributes `engine.worker.trial_loop` writes."""

    def __init__(self, name: str = "synth") -> None:
        self.name = name
        self.url = default_storage_url(name)
        self.storage: BaseStorage = open_storage(self.url)
        self.queue = CampaignQueue(self.storage, name)

    def experiment(
        self, budget: str, horizon: int, n_trials: int = 4, dataset: str = "SP500",
        periods: int = 1, objective: str = "val_bce",
    ) -> ExperimentConfig:  # fmt: skip
        exp = ExperimentConfig(
            objective=objective,  # type: ignore[arg-type]
            name=f"{budget}_h{horizon}",
            budget=budget,
            data=data_spec(horizon, dataset, periods),
            n_trials=n_trials,
            device="cpu",
            precision="fp32",
        )
        self.queue.ensure(exp, grid=[], space_key="synthetic", extremes=[])
        return exp

    def study_name(self, exp: ExperimentConfig) -> str:
        return self.queue.entry(exp.name).study_name

    def add_trial(
        self,
        exp: ExperimentConfig,
        value: float,
        n_params: int,
        arch: Architecture,
        *,
        train_params: dict[str, Any] | None = None,
        best_epoch: int = 2,
        threshold: float = 0.3,
        val_bce: float | None = None,
    ) -> int:
        """A COMPLETE search trial; returns its trial number. `value` is the objective;
        `val_bce` its validation BCE when the objective is another (1 - ROC-AUC)."""
        bce = value if val_bce is None else val_bce
        trial = optuna.trial.create_trial(
            value=value,
            user_attrs={
                "architecture": arch.to_dict(),
                "n_params": n_params,
                "train_params": {"epochs": 3, "batch_size": 64}
                if train_params is None
                else train_params,
                "metrics": {"bce": bce, "threshold_best_f1": threshold, "roc_auc": 0.55},
                "best_epoch": best_epoch,
                "val_bce": bce,
                "objective": "val_bce" if val_bce is None else "val_auc",
            },
        )
        sid = self.storage.get_study_id_from_name(self.study_name(exp))
        tid = self.storage.create_new_trial(sid, template_trial=trial)
        return self.storage.get_trial_number_from_id(tid)

    def add_seed(
        self, exp: ExperimentConfig, source_trial: int, seed: int, bce: float, n_params: int = 0,
        *, period: int = 1, scheme: str | None = SCHEME, probs: Sequence[float] = (),
        days: Sequence[int] = (),
    ) -> int:  # fmt: skip
        """A stored retraining run, as `engine.report.retrain.store_run` stores one
        (`scheme=None`: a run of the earlier scheme, without period or probabilities)."""
        source = self.study_name(exp)
        study = optuna.create_study(
            storage=self.storage,
            study_name=retrain_study_name(source),
            direction="minimize",
            load_if_exists=True,
        )
        study.set_user_attr(S_KIND, "retrain")
        study.set_user_attr(S_SOURCE_STUDY, source)
        metrics = {"bce": bce, "roc_auc": 0.5, "pr_auc": 0.2, "brier": 0.2}
        trial = optuna.trial.create_trial(
            value=bce,
            user_attrs={
                T_SEED: seed,
                T_SOURCE_TRIAL: source_trial,
                T_TEST_METRICS: metrics,
                "epochs": 2,
                "n_params": n_params,
                T_DONE: True,
                **(
                    {
                        T_SCHEME: scheme,
                        T_PERIOD: period,
                        T_TEST_PROBS: list(probs),
                        T_TEST_DAYS: list(days),
                    }
                    if scheme
                    else {}
                ),
            },
        )
        tid = self.storage.create_new_trial(study._study_id, template_trial=trial)
        return self.storage.get_trial_number_from_id(tid)


def write_power_law_campaign(
    campaign: SyntheticCampaign,
    sizes: Sequence[int],
    loss: Callable[[int], float],
    *,
    horizon: int = 1,
    seeds: int = 3,
    noise: float = 0.004,
    rng_seed: int = 0,
    configs: int = 1,
    config_noise: float = 0.0,
    periods: int = 1,
) -> None:
    """Each size: a search with a worse trial and `configs` good ones (distinct
    architectures, parameter counts n, n+1, ...), and `seeds` stored retraining seeds of
    each good one per test period, whose test BCE is loss(N) plus a configuration offset
    plus noise."""
    rng = np.random.default_rng(rng_seed)
    for n in sizes:
        exp = campaign.experiment(budget_label(n), horizon, periods=periods)
        arch = Architecture(d_model=16, n_layers=max(1, n // 100_000), n_heads=2, d_ff=32)
        campaign.add_trial(exp, loss(n) + 0.05, n, Architecture(8, 1, 2, 8))
        for j in range(configs):
            size = n + j
            good = Architecture(arch.d_model, arch.n_layers, arch.n_heads, arch.d_ff + 32 * j)
            best = campaign.add_trial(exp, loss(n) - 0.01 + 0.001 * j, size, good)
            offset = rng.normal(0, config_noise) if config_noise else 0.0
            for period in range(1, periods + 1):
                for seed in range(seeds):
                    bce = float(loss(size) + offset + rng.normal(0, noise))
                    campaign.add_seed(exp, best, seed, bce, n_params=size, period=period)
