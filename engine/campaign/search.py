"""An experiment's search as Optuna objects: distributions, sampler, pruner, extremes.

Rules:
- The distributions of a study never change (Optuna rejects a "dynamic value space",
  original-pipeline item 13). The architecture is a categorical over the *indices* of
  the budget's grid, and the grid is stored with the study; `check_value_space` refuses
  loudly when a config change would alter either.
- Every sampled parameter is asked up front (`study.ask(distributions)`), so enqueued
  trials (forced extremes, re-runs of interrupted trials) and sampled ones look alike.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from engine.campaign.model import ExperimentConfig, ParamSpec
from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.train.config import TrainParams

ARCH_PARAM = "arch"


def distribution_of(spec: ParamSpec) -> BaseDistribution:
    """One search-space entry as the Optuna distribution it is sampled from."""
    if spec.kind == "categorical":
        return CategoricalDistribution(list(spec.choices))
    if spec.low is None or spec.high is None:
        raise UserError(f"{spec.kind} needs low and high", where=f"search.{spec.name}")
    if spec.kind == "int":
        step = int(spec.step) if spec.step else 1
        return IntDistribution(int(spec.low), int(spec.high), step=step)
    if spec.kind == "log_uniform":
        return FloatDistribution(float(spec.low), float(spec.high), log=True)
    return FloatDistribution(float(spec.low), float(spec.high), step=spec.step)


def distributions(exp: ExperimentConfig, grid_size: int) -> dict[str, BaseDistribution]:
    """The study's value space: the grid index plus every searched TrainParams field."""
    if grid_size < 1:
        raise UserError(f"budget {exp.budget} has an empty architecture grid", where=exp.name)
    space: dict[str, BaseDistribution] = {
        ARCH_PARAM: CategoricalDistribution(list(range(grid_size)))
    }
    for spec in exp.search_space:
        space[spec.name] = distribution_of(spec)
    return space


def value_space_key(
    space: dict[str, BaseDistribution], grid: list[dict[str, int]], objective: str = "val_bce"
) -> str:
    """A fingerprint of everything that must stay fixed for the life of a study: the value
    space, the grid and what the values measure (the objective; left out for val_bce, so
    the keys of studies from before objectives existed still match)."""
    payload: dict[str, Any] = {
        "space": {k: distribution_to_json(v) for k, v in sorted(space.items())},
        "grid": grid,
    }
    if objective != "val_bce":
        payload["objective"] = objective
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def check_value_space(experiment: str, stored_key: str | None, current_key: str) -> None:
    """Refuse a config that would change an existing study's value space."""
    if stored_key is not None and stored_key != current_key:
        raise UserError(
            "the search space, architecture grid or objective differs from the one its study "
            "was created with; Optuna cannot mix value spaces (or what values measure) in "
            "one study",
            where=f"experiment {experiment}",
            hint="restore the previous settings, or re-run the experiment in a fresh study",
        )


def trial_inputs(
    params: dict[str, Any], exp: ExperimentConfig, grid: list[dict[str, int]]
) -> tuple[Architecture, int, TrainParams]:
    """(architecture, parameter count, TrainParams) of a trial's sampled values."""
    entry = grid[int(params[ARCH_PARAM])]
    arch = Architecture.from_dict(entry)
    values: dict[str, Any] = dict(exp.fixed_params)
    values.update({k: v for k, v in params.items() if k != ARCH_PARAM})
    return arch, int(entry.get("n_params", 0)), TrainParams.from_dict(values)


def make_sampler(
    exp: ExperimentConfig, grid_size: int, *, parallel: bool, salt: int = 0
) -> optuna.samplers.BaseSampler:
    """TPE (seeded, multivariate, constant liar when trials run in parallel), random or grid.

    `salt` varies the seed between workers so that two workers starting together do not
    draw the same random start-up points.
    """
    spec = exp.sampler
    seed = None if spec.seed is None else spec.seed + salt
    if spec.kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.kind == "grid":
        return optuna.samplers.GridSampler(grid_choices(exp, grid_size), seed=seed)
    liar = parallel if spec.constant_liar is None else spec.constant_liar
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=spec.multivariate,
        constant_liar=liar,
        n_startup_trials=spec.n_startup_trials,
    )


def _grid_values(exp: ExperimentConfig) -> dict[str, list[Any]]:
    values: dict[str, list[Any]] = {}
    for spec in exp.search_space:
        if spec.kind == "categorical":
            values[spec.name] = list(spec.choices)
        elif spec.kind == "int" and spec.low is not None and spec.high is not None:
            step = int(spec.step) if spec.step else 1
            values[spec.name] = list(range(int(spec.low), int(spec.high) + 1, step))
        elif (
            spec.step and spec.low is not None and spec.high is not None and spec.kind == "uniform"
        ):
            n = round((spec.high - spec.low) / spec.step)
            values[spec.name] = [spec.low + i * spec.step for i in range(n + 1)]
        else:
            raise UserError(
                f"the grid sampler cannot enumerate a continuous {spec.kind} parameter",
                where=f"{exp.name}.search.{spec.name}",
                hint="give it a step or make it categorical, or use the tpe sampler",
            )
    return values


def grid_choices(exp: ExperimentConfig, grid_size: int) -> dict[str, list[Any]]:
    """The full grid of a grid-sampled experiment, architecture index included."""
    return {ARCH_PARAM: list(range(grid_size)), **_grid_values(exp)}


def make_pruner(exp: ExperimentConfig) -> optuna.pruners.BasePruner:
    spec = exp.pruner
    if spec.kind == "none":
        return optuna.pruners.NopPruner()
    if spec.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, spec.n_warmup_steps))
    return optuna.pruners.MedianPruner(
        n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps
    )


def extreme_params(
    exp: ExperimentConfig, extreme_indices: list[int], space: dict[str, BaseDistribution]
) -> list[dict[str, Any]]:
    """The params of each forced-extreme trial: the extreme architecture, and for the
    training knobs the middle of each range (so the architecture is what varies)."""
    middle: dict[str, Any] = {}
    for name, dist in space.items():
        if name == ARCH_PARAM:
            continue
        middle[name] = _middle(dist)
    return [{ARCH_PARAM: index, **middle} for index in extreme_indices]


def _middle(dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[len(dist.choices) // 2]
    if isinstance(dist, IntDistribution):
        mid = (dist.low + dist.high) // 2
        return dist.low + ((mid - dist.low) // dist.step) * dist.step
    if isinstance(dist, FloatDistribution):
        if dist.log:
            return float((dist.low * dist.high) ** 0.5)
        if dist.step:
            n = round((dist.high - dist.low) / dist.step)
            return dist.low + (n // 2) * dist.step
        return (dist.low + dist.high) / 2
    raise TypeError(f"unsupported distribution {dist!r}")
