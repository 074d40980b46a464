"""Campaign TOML -> Campaign: layout, merging, naming, order and precise errors."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from engine.campaign.config import load_campaign, load_experiments
from engine.campaign.model import ExperimentConfig
from engine.errors import UserError, UserErrors
from engine.train.config import TrainParams
from tests.campaign.conftest import ROOT, write_config

MINIMAL = """
[campaign]
name = "t"

[defaults.params]
learning_rate = { log_uniform = [1e-4, 1e-3] }

[grid]
budgets = ["10K"]
horizons = [1]
"""


def errors_of(path: Path) -> list[str]:
    with pytest.raises(UserErrors) as caught:
        load_campaign(path)
    return caught.value.lines()


def test_phase6a_is_the_reference_campaign() -> None:
    campaign = load_campaign(ROOT / "configs" / "phase6a.toml")
    assert [e.name for e in campaign.experiments] == [
        "200M_h1", "200M_h3", "200M_h5", "2B_h1", "2B_h3", "2B_h5",
        "2M_h1", "2M_h3", "2M_h5", "20M_h1", "20M_h3", "20M_h5",
    ]  # fmt: skip
    for exp in campaign.experiments:
        assert exp.n_trials == 50
        assert exp.task == "threshold_1pct"
        assert exp.timeout_s is None
        assert exp.name == f"{exp.budget}_h{exp.horizon}"
        assert exp.data.labels.horizon == exp.horizon
        space = {p.name: p for p in exp.search_space}
        assert (space["learning_rate"].kind, space["learning_rate"].low) == ("log_uniform", 1e-4)
        assert space["learning_rate"].high == 1e-3
        assert space["epochs"].choices == (50, 75, 100)
        assert space["batch_size"].choices == (64, 128, 256, 512)
        assert (space["weight_decay"].low, space["weight_decay"].high) == (1e-5, 1e-3)
        # issue 13: the reference's 100 .. 500 warmup steps outlasted the shortest trials
        assert space["warmup_steps"].choices == (0, 20, 60)
        assert (space["dropout"].kind, space["dropout"].low, space["dropout"].high) == (
            "uniform",
            0.1,
            0.3,
        )
        assert exp.fixed_params == {"patience": 10}


@pytest.mark.parametrize("name", ["demo", "tiny", "phase6a"])
def test_shipped_configs_load_and_round_trip(name: str) -> None:
    campaign = load_campaign(ROOT / "configs" / f"{name}.toml")
    assert campaign.name == name
    assert campaign.experiments
    for exp in campaign.experiments:
        stored = json.loads(json.dumps(exp.to_dict()))  # as kept in study attributes
        assert ExperimentConfig.from_dict(stored) == exp
        assert {p.name for p in exp.search_space} | set(exp.fixed_params) <= set(
            TrainParams.names()
        )


def test_demo_uses_embedded_data_and_ranks_several_experiments() -> None:
    campaign = load_campaign(ROOT / "configs" / "demo.toml")
    assert len(campaign.experiments) >= 3
    assert {e.data.dataset for e in campaign.experiments} == {"SP500"}
    assert {e.horizon for e in campaign.experiments} == {1, 5}


def test_defaults_grid_and_experiment_values_merge_key_by_key(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
[campaign]
name = "merge"
workers = 2
order = ["10K_h3"]

[defaults]
n_trials = 7
timeout = "1h30m"
[defaults.split]
val_fraction = 0.2
min_val_windows = 50
[defaults.params]
learning_rate = { log_uniform = [1e-4, 1e-3] }
patience = 4

[grid]
budgets = ["10K", "30K"]
horizons = [1, 3]
n_trials = 9
[grid.split]
mode = "chunks"

[[experiments]]
name = "special"
budget = "10K"
horizon = 5
price_basis = "close"
split = { val_fraction = 0.3 }
params = { learning_rate = { uniform = [0.001, 0.002] }, epochs = 3 }

[monitor]
warning_c = 80
""",
    )
    campaign = load_campaign(path)
    assert campaign.workers == 2
    assert campaign.monitor.warning_c == 80.0
    names = [e.name for e in campaign.experiments]
    assert names == ["10K_h3", "10K_h1", "30K_h1", "30K_h3", "special"]
    grid_exp = campaign.experiment("30K_h3")
    assert (grid_exp.n_trials, grid_exp.horizon, grid_exp.timeout_s) == (9, 3, 5400.0)
    assert grid_exp.data.split.mode == "chunks"
    assert grid_exp.data.split.val_fraction == 0.2  # from defaults, not reset by [grid.split]
    special = campaign.experiment("special")
    assert special.n_trials == 7  # the grid's value applies to grid experiments only
    assert special.data.labels.price_basis == "close"
    assert special.data.split.val_fraction == 0.3
    assert special.data.split.min_val_windows == 50
    assert special.data.split.mode == "contiguous"
    assert [(p.name, p.kind) for p in special.search_space] == [("learning_rate", "uniform")]
    assert special.fixed_params == {"patience": 4, "epochs": 3}
    assert [e.name for e in load_experiments(path)] == names


def test_no_timeout_unless_set(tmp_path: Path) -> None:
    campaign = load_campaign(write_config(tmp_path, MINIMAL))
    assert campaign.experiments[0].timeout_s is None


def test_dropout_sites_a_preset_or_sites_default_residual(tmp_path: Path) -> None:
    text = MINIMAL.replace("[grid]", '[defaults]\ndropout_sites = "reference"\n\n[grid]')
    text += (
        '\n[[experiments]]\nbudget = "10K"\nhorizon = 2\ndropout_sites = ["ffn_out", "attention"]\n'
    )
    first, second = load_campaign(write_config(tmp_path, text)).experiments
    assert first.dropout_sites == ("embedding", "attention", "ffn_inner", "ffn_out")
    assert second.dropout_sites == ("attention", "ffn_out")  # model order, not the file's
    stored = json.loads(json.dumps(second.to_dict()))  # as the study keeps it
    assert ExperimentConfig.from_dict(stored) == second
    default = load_campaign(write_config(tmp_path, MINIMAL)).experiments[0]
    assert default.dropout_sites == ("embedding", "attention_out", "ffn_out")
    old = {k: v for k, v in default.to_dict().items() if k != "dropout_sites"}
    assert ExperimentConfig.from_dict(old).dropout_sites == default.dropout_sites
    bad = MINIMAL.replace("[grid]", '[defaults]\ndropout_sites = "refrence"\n\n[grid]')
    (line,) = errors_of(write_config(tmp_path, bad))
    assert ":9: defaults.dropout_sites: expected a preset" in line
    assert "did you mean 'reference'?" in line


def test_several_tasks_put_the_task_in_the_name(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "horizons = [1]", 'horizons = [1]\ntasks = ["threshold_1pct", "threshold_2pct"]'
    )
    campaign = load_campaign(write_config(tmp_path, text))
    assert [e.name for e in campaign.experiments] == [
        "10K_h1_threshold_1pct",
        "10K_h1_threshold_2pct",
    ]
    assert campaign.experiments[1].data.labels.threshold_pct == 2.0


def test_unknown_key_names_file_line_and_nearest_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL.replace('name = "t"', 'name = "t"\nwokers = 2'))
    assert errors_of(path) == [f"{path}:4: campaign.wokers: unknown key (did you mean workers?)"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """
[defaults]
n_trials = 0
precision = "fp16"

[defaults.params]
lerning_rate = { log_uniform = [1e-4, 1e-3] }
dropout = { uniform = [0.3, 0.1] }
epochs = { uniform = [1, 5] }

[defaults.sampler]
kind = "cmaes"

[grid]
budgets = ["2M", "lots"]
horizons = [0, 1]
"""
    path = write_config(tmp_path, text)
    lines = errors_of(path)
    assert len(lines) == 8, lines
    expected = [
        (":3: defaults.n_trials:", "expected an integer >= 1, got 0"),
        (":4: defaults.precision:", "expected one of 'auto', 'fp32', 'bf16', got 'fp16'"),
        (":7: defaults.params.lerning_rate:", "did you mean learning_rate?"),
        (":8: defaults.params.dropout:", "expected low < high"),
        (":9: defaults.params.epochs:", "epochs is an integer; use int or categorical"),
        (":12: defaults.sampler.kind:", "got 'cmaes'"),
        (":15: grid.budgets:", "unknown budget syntax 'lots'"),
        (":16: grid.horizons:", "expected an integer >= 1, got 0"),
    ]
    for (place, text_part), line in zip(expected, sorted(lines, key=_line_no), strict=True):
        assert place in line and text_part in line, line
    assert all(line.startswith(f"{path}:") for line in lines)


def _line_no(line: str) -> int:
    return int(line.split(":")[1])


def test_horizon_zero_is_rejected_where_it_is_written(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL.replace("horizons = [1]", "horizons = [0]"))
    assert errors_of(path) == [f"{path}:10: grid.horizons: expected an integer >= 1, got 0"]


def test_a_name_that_contradicts_its_horizon_is_an_error(tmp_path: Path) -> None:
    text = (
        MINIMAL.split("[grid]")[0]
        + '[[experiments]]\nname = "10K_h3"\nbudget = "10K"\nhorizon = 1\n'
    )
    (line,) = errors_of(write_config(tmp_path, text))
    assert ":9: experiments[0].name: name '10K_h3' says horizon 3 but horizon is 1" in line


def test_duplicate_experiment_and_unknown_order(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace('name = "t"', 'name = "t"\norder = ["10K_h2"]')
        + '\n[[experiments]]\nbudget = "10K"\nhorizon = 1\n'
    )
    lines = errors_of(write_config(tmp_path, text))
    assert len(lines) == 2, lines
    assert "experiments[0]: duplicate experiment name '10K_h1' (first at" in lines[0]
    assert "campaign.order: names unknown experiment '10K_h2' (did you mean 10K_h1?)" in lines[1]


def test_grid_sampler_needs_a_finite_space(tmp_path: Path) -> None:
    text = MINIMAL.replace("[grid]", '[defaults.sampler]\nkind = "grid"\n\n[grid]')
    (line,) = errors_of(write_config(tmp_path, text))
    assert "defaults.params.learning_rate: the grid sampler needs a finite set" in line


def test_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[campaign]\nname = "t"\nworkers = \n')
    with pytest.raises(UserError) as caught:
        load_campaign(path)
    assert str(caught.value).startswith(f"{path}:3: TOML syntax error:")


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="config file not found"):
        load_campaign(tmp_path / "nope.toml")


def test_campaign_is_frozen() -> None:
    campaign = load_campaign(ROOT / "configs" / "tiny.toml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        campaign.experiments[0].n_trials = 3  # type: ignore[misc]


WRONG_VALUES = [
    '"text"',
    "0",
    "-1",
    "2.5",
    "true",
    "[]",
    '["a", 1]',
    "{}",
    "{ x = 1 }",
    "1e400",
    "nan",
]


@pytest.mark.parametrize("config", ["tiny", "phase6a"])
def test_any_wrong_value_is_a_located_user_error_never_a_crash(config: str, tmp_path: Path) -> None:
    """Replace each value of a shipped config with values of every wrong kind."""
    lines = (ROOT / "configs" / f"{config}.toml").read_text().splitlines()
    assignments = [i for i, line in enumerate(lines) if " = " in line and not line.startswith("#")]
    assert len(assignments) > 10
    for index in assignments:
        key = lines[index].split(" = ")[0]
        for value in WRONG_VALUES:
            text = "\n".join([*lines[:index], f"{key} = {value}", *lines[index + 1 :]])
            path = write_config(tmp_path, text)
            try:
                campaign = load_campaign(path)
            except UserErrors as errors:
                for line in errors.lines():
                    assert line.startswith(f"{path}:") and "\n" not in line, line
            except UserError as error:
                assert str(error).startswith(f"{path}"), str(error)
            else:  # accepted: then it is a sane value
                for exp in campaign.experiments:
                    assert 0 < exp.data.split.val_fraction < 1
                    assert all(
                        math.isfinite(p.low) and math.isfinite(p.high)
                        for p in exp.search_space
                        if p.low is not None and p.high is not None
                    )


def test_test_periods_and_report_settings_are_validated_where_written(tmp_path: Path) -> None:
    good = write_config(
        tmp_path,
        MINIMAL + "\n[defaults.split]\ntest_periods = 3\n\n[report]\ntop = 2\nseeds = 4\n",
        "good.toml",
    )
    campaign = load_campaign(good)
    assert {e.data.split.test_periods for e in campaign.experiments} == {3}
    assert (campaign.report.top, campaign.report.seeds, campaign.report.workers) == (2, 4, "auto")
    assert load_campaign(write_config(tmp_path, MINIMAL, "plain.toml")).report.top == 3

    bad = write_config(
        tmp_path,
        MINIMAL + "\n[defaults.split]\ntest_periods = 0\n\n[report]\ntop = 0\nseed = 2\n",
        "bad.toml",
    )
    lines = errors_of(bad)
    assert any("defaults.split.test_periods: expected an integer >= 1, got 0" in x for x in lines)
    assert any("report.top: expected an integer >= 1, got 0" in x for x in lines)
    assert any("report.seed" in x and "seeds" in x for x in lines)  # did you mean


def test_test_periods_need_contiguous_splits() -> None:
    from engine.dataset.spec import DataSpec, SplitSpec
    from engine.dataset.splits import split_days

    spec = DataSpec(split=SplitSpec(mode="chunks", test_periods=3))
    with pytest.raises(UserError, match='test_periods = 3 needs split mode "contiguous"') as e:
        split_days(4800, spec)
    assert e.value.where == "split.test_periods"
    few = DataSpec(split=SplitSpec(test_fraction=0.02, test_periods=10))
    with pytest.raises(UserError, match="blocks of 9, fewer than 20") as e:
        split_days(4800, few)
    assert e.value.where == "split.test_periods"
