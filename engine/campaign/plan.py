"""What the engine (and a node creating a campaign) resolves for each experiment before
anything runs: the architecture grid as stored with its study, the key of its value
space (a study refuses a config whose space changed) and its forced extremes; and the
split facts stored beside them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.campaign.model import ExperimentConfig
from engine.campaign.search import distributions, extreme_params, value_space_key
from engine.dataset.spec import DataSpec
from engine.errors import UserError


@dataclass
class Plan:
    """What the engine resolved before starting: per experiment its grid and extremes."""

    grids: dict[str, list[dict[str, int]]] = field(default_factory=dict)
    extremes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    space_keys: dict[str, str] = field(default_factory=dict)


def plan_experiment(exp: ExperimentConfig, plan: Plan) -> None:
    """Grid (as stored with the study), value-space key and forced extremes of `exp`."""
    from engine.dataset.features import tier_columns
    from engine.model.grid import architecture_grid, extremes

    d = exp.data
    grid = architecture_grid(
        exp.budget, len(tier_columns(d.tier)), exp.grid, d.context_len, d.patch_len, d.stride
    )
    stored = [{**e.arch.to_dict(), "n_params": e.n_params} for e in grid]
    space = distributions(exp, len(grid))
    plan.grids[exp.name] = stored
    plan.space_keys[exp.name] = value_space_key(space, stored, exp.objective)
    indices = [grid.index(e) for e in extremes(grid, exp.budget)] if exp.forced_extremes else []
    plan.extremes[exp.name] = extreme_params(exp, indices, space)


def data_facts(data: DataSpec) -> dict[str, Any] | None:
    """An experiment's split facts as stored with its study (None: data unreadable, which
    pre-flight has already reported)."""
    from engine.dataset.manifest import load_processed
    from engine.dataset.splits import split_facts

    try:
        frame, _ = load_processed(data.dataset, data.tier, data.version)
        return split_facts(frame, data).to_dict()
    except UserError:
        return None
