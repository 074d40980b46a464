"""Search-space sanity in pre-flight: dead ranges are warned about with their numbers, and
the shipped campaigns have none."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.campaign.config import load_campaign
from engine.campaign.model import ExperimentConfig, ParamSpec, PrunerSpec
from engine.campaign.space_checks import dead_ranges, schedule_area
from engine.dataset.spec import DataSpec
from engine.process.preflight import run_preflight
from engine.train.schedule import lr_factor
from tests.campaign.conftest import ROOT


def experiment(*space: ParamSpec, **fixed: object) -> ExperimentConfig:
    return ExperimentConfig(
        name="2M_h1",
        budget="2M",
        data=DataSpec(),
        search_space=space,
        fixed_params=dict(fixed),
        pruner=PrunerSpec(n_warmup_steps=1),
    )


def cat(name: str, *choices: object) -> ParamSpec:
    return ParamSpec(name, "categorical", choices=choices)


def test_warmup_beyond_the_fewest_steps_is_warned_with_the_numbers() -> None:
    # phase6a before the fix: 50 epochs of batch 512 on 3220 windows = 300 steps
    exp = experiment(
        cat("warmup_steps", 100, 500), cat("epochs", 50, 100), cat("batch_size", 64, 512)
    )
    warnings = dead_ranges(exp, 3220)
    assert any("up to 500 warmup steps" in w and "as few as 300" in w for w in warnings)
    ok = experiment(cat("warmup_steps", 0, 60), cat("epochs", 50, 100), cat("batch_size", 64, 512))
    assert not any("warmup" in w for w in dead_ranges(ok, 3220))


def test_weight_decay_that_cannot_move_the_weights_is_warned() -> None:
    # the old demo: wd 1e-5 .. 1e-3, lr up to 3e-3, at most 4 epochs of batch 128
    space = (
        ParamSpec("weight_decay", "log_uniform", 1e-5, 1e-3),
        ParamSpec("learning_rate", "log_uniform", 3e-4, 3e-3),
        cat("epochs", 2, 4),
        cat("batch_size", 128, 256),
        cat("warmup_steps", 0, 20),
    )
    (warning,) = [w for w in dead_ranges(experiment(*space), 3220) if "weight_decay" in w]
    assert "100 steps" in warning and "0.0150%" in warning
    wider = (ParamSpec("weight_decay", "log_uniform", 1e-2, 0.5), *space[1:])
    assert not any("weight_decay" in w for w in dead_ranges(experiment(*wider), 3220))
    # a fixed decay is not a range: nothing to warn about
    assert not any("weight_decay" in w for w in dead_ranges(experiment(*space[1:]), 3220))


def test_schedule_area_is_the_sum_of_the_learning_rate_factors() -> None:
    assert schedule_area(10, 100) == pytest.approx(sum(lr_factor(s, 10, 100) for s in range(100)))
    assert schedule_area(0, 1000) == pytest.approx(500, rel=0.01)  # a cosine averages 1/2
    assert math.isclose(schedule_area(0, 1), 1.0)


def test_batch_sizes_above_the_training_set_and_a_pruner_that_never_acts() -> None:
    exp = experiment(cat("batch_size", 256, 512, 1024), cat("epochs", 3))
    warnings = dead_ranges(exp, 400)
    assert any(w.startswith("batch_size: 512, 1024") for w in warnings)
    late = ExperimentConfig(
        name="2M_h1", budget="2M", data=DataSpec(), pruner=PrunerSpec(n_warmup_steps=60)
    )
    assert any("never prunes" in w for w in dead_ranges(late, 3000))  # 50 epochs by default


@pytest.mark.parametrize("config", ["demo.toml", "phase6a.toml"])
def test_shipped_campaigns_have_no_dead_range(config: str, data_workspace: Path) -> None:
    report = run_preflight(load_campaign(ROOT / "configs" / config))
    dead = ("warmup_steps:", "weight_decay:", "batch_size:", "never prunes")
    assert not [w for w in report.warnings if any(d in w for d in dead)]


def test_check_prints_split_dates_and_drift(data_workspace: Path) -> None:
    report = run_preflight(load_campaign(ROOT / "configs" / "demo.toml"))
    text = "\n".join(report.lines)
    # three test periods: the test windows are 3 blocks at the end, each after the gap
    assert "train   3100 windows  2000-01-11 .. 2012-05-07  label rate 0.253" in text
    assert "test     716 windows  2015-09-03 .. 2018-12-28  label rate 0.158  blocks 3" in text
    assert "56K_h1: splits as 3.5K_h1" in text
    assert any("label rate drifts: test 0.158 vs train 0.253" in w for w in report.warnings)
