"""Search space -> Optuna objects: fixed value spaces, samplers, pruners, extremes."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
from enginehelp import FIXTURES
from optuna.distributions import CategoricalDistribution, FloatDistribution

from engine.campaign.config import load_campaign
from engine.campaign.model import ExperimentConfig, PrunerSpec, SamplerSpec
from engine.campaign.search import (
    ARCH_PARAM,
    distributions,
    extreme_params,
    make_pruner,
    make_sampler,
    trial_inputs,
    value_space_key,
)
from engine.errors import UserError


@pytest.fixture
def exp() -> ExperimentConfig:
    return load_campaign(FIXTURES / "micro.toml").experiments[0]


def test_the_architecture_is_a_categorical_over_grid_indices(exp: ExperimentConfig) -> None:
    space = distributions(exp, 3)
    assert space[ARCH_PARAM] == CategoricalDistribution([0, 1, 2])
    lr = space["learning_rate"]
    assert isinstance(lr, FloatDistribution) and lr.log
    with pytest.raises(UserError, match="empty architecture grid"):
        distributions(exp, 0)


def test_the_value_space_key_changes_with_the_space_or_the_grid(exp: ExperimentConfig) -> None:
    grid = [{"d_model": 8, "n_layers": 1, "n_heads": 2, "d_ff": 16, "n_params": 1689}]
    key = value_space_key(distributions(exp, 1), grid)
    assert key == value_space_key(distributions(exp, 1), grid)
    assert key != value_space_key(distributions(exp, 1), [{**grid[0], "d_ff": 32}])
    fewer = dataclasses.replace(exp, search_space=exp.search_space[:1])
    assert key != value_space_key(distributions(fewer, 1), grid)


def test_samplers_and_pruners(exp: ExperimentConfig) -> None:
    tpe = make_sampler(exp, 2, parallel=True)
    assert isinstance(tpe, optuna.samplers.TPESampler) and tpe._constant_liar
    assert not make_sampler(exp, 2, parallel=False)._constant_liar  # type: ignore[attr-defined]
    rnd = dataclasses.replace(exp, sampler=SamplerSpec(kind="random"))
    assert isinstance(make_sampler(rnd, 2, parallel=True), optuna.samplers.RandomSampler)
    grid = dataclasses.replace(exp, sampler=SamplerSpec(kind="grid"))
    with pytest.raises(UserError, match="grid sampler cannot enumerate"):
        make_sampler(grid, 2, parallel=False)
    only_categorical = dataclasses.replace(
        grid, search_space=tuple(s for s in exp.search_space if s.kind == "categorical")
    )
    assert isinstance(
        make_sampler(only_categorical, 2, parallel=False), optuna.samplers.GridSampler
    )
    assert isinstance(make_pruner(exp), optuna.pruners.NopPruner)
    hyper = dataclasses.replace(exp, pruner=PrunerSpec(kind="hyperband"))
    assert isinstance(make_pruner(hyper), optuna.pruners.HyperbandPruner)
    median = dataclasses.replace(exp, pruner=PrunerSpec(kind="median", n_warmup_steps=2))
    assert isinstance(make_pruner(median), optuna.pruners.MedianPruner)


def test_extremes_vary_only_the_architecture_and_map_to_train_params(
    exp: ExperimentConfig,
) -> None:
    space = distributions(exp, 2)
    params = extreme_params(exp, [0, 1], space)
    assert [x[ARCH_PARAM] for x in params] == [0, 1]
    assert {k: v for k, v in params[0].items() if k != ARCH_PARAM} == {
        k: v for k, v in params[1].items() if k != ARCH_PARAM
    }
    for name, dist in space.items():
        assert dist._contains(dist.to_internal_repr(params[0][name]))
    grid = [
        {"d_model": 8, "n_layers": 1, "n_heads": 2, "d_ff": 16, "n_params": 1689},
        {"d_model": 8, "n_layers": 1, "n_heads": 2, "d_ff": 32, "n_params": 1961},
    ]
    arch, n_params, train = trial_inputs(params[1], exp, grid)
    assert (arch.d_ff, n_params) == (32, 1961)
    assert train.learning_rate == params[1]["learning_rate"]
    assert train.epochs == 1  # a fixed (not searched) param of the config
