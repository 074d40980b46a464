"""The report on synthetic campaigns written into a real Optuna journal storage.

The retraining runs are stored as `engine.report.retrain` stores them, and the data
loader fails the test if called: the report must reuse stored work, not train again.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import optuna
import pytest
import torch

from engine.dataset.periods import prepare_period, test_periods
from engine.dataset.spec import DataSpec
from engine.dataset.windows import PreparedData
from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.report.build import ReportOptions, build_report
from engine.report.retrain import retrain_study_name
from engine.storage.backend import open_storage
from tests.report.synth import SyntheticCampaign, ohlcv, write_power_law_campaign

SIZES = [100_000, 200_000, 400_000, 800_000, 1_600_000, 3_200_000]
STORED_ONLY = ReportOptions(seeds=3, top_k=1, baselines=False)


def no_training(spec: DataSpec, period: int, device: str) -> Any:
    raise AssertionError("the report trained although every run was stored")


def power_law(n: int) -> float:
    return float(4.0 * n ** (-0.25) + 0.5)


def test_a_power_law_campaign_falls_with_size_in_every_period(
    synthetic: SyntheticCampaign,
) -> None:
    write_power_law_campaign(synthetic, SIZES, power_law, periods=2, noise=0.002)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    pooled = report.trend("horizon", 1)
    assert pooled is not None and report.fit_source == "test"
    t = pooled.trend
    assert (t.n_sizes, t.n_runs) == (6, 36) and t.verdict == "loss falls with size"
    for period in (1, 2):
        each = report.trend("horizon", 1, period)
        assert each is not None and each.trend.n_runs == 18
    fact = report.trend_facts()[0]
    assert len(fact.periods) == 2
    assert report.headline[0].startswith("h1: loss falls with size: ")
    assert "per test period: falls in 2 of 2" in report.headline[0]
    assert report.adequacy is not None
    assert report.adequacy.horizons[0].sizes == 6 and report.adequacy.horizons[0].periods == 2


def test_top_configurations_and_seeds_are_all_runs_of_the_trend(
    synthetic: SyntheticCampaign,
) -> None:
    write_power_law_campaign(synthetic, SIZES[:4], power_law, configs=3, config_noise=0.005)
    options = dataclasses.replace(STORED_ONLY, top_k=3)
    report = build_report(synthetic.storage, "synth", options, load_data=no_training)
    for row in report.rows:
        assert len(row.result.top) == 3 and len(row.runs) == 9
        assert {r.source_trial for r in row.runs} == {t.number for t in row.result.top}
    pooled = report.trend("horizon", 1)
    assert pooled is not None
    assert (pooled.trend.n_runs, pooled.trend.n_sizes, pooled.trend.n_configs) == (36, 4, 12)
    assert not report.exponents[1].determined  # 4 sizes never print an exponent
    assert "exponent not determined (4 sizes" in report.headline[0]


def test_flat_campaign_has_no_detectable_trend(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES, lambda n: 0.6, noise=0.01, rng_seed=5)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    pooled = report.trend("horizon", 1)
    assert pooled is not None and pooled.trend.verdict == "no detectable trend"
    assert not report.exponents[1].determined


def test_each_horizon_gets_its_trend_and_their_difference(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES, power_law, horizon=1)
    write_power_law_campaign(synthetic, SIZES, lambda n: 0.69, horizon=5, noise=0.01, rng_seed=5)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    assert report.horizons() == [1, 5]
    assert report.trend("horizon", 1).trend.verdict == "loss falls with size"  # type: ignore[union-attr]
    assert report.trend("horizon", 5).trend.verdict == "no detectable trend"  # type: ignore[union-attr]
    (difference,) = report.differences
    assert (difference.a, difference.b, difference.paired) == ("h5", "h1", True)
    assert any(line.startswith("h5 vs h1: ") for line in report.headline)


def test_numbers_trace_to_stored_trials(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES[:3], power_law)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    storage = open_storage(synthetic.url)  # a fresh reader, as a user would
    for row in report.rows:
        best = row.result.best
        assert best is not None
        search = optuna.load_study(study_name=row.result.study_name, storage=storage)
        stored = search.trials[best.number]
        assert stored.value == best.value == min(t.value for t in search.trials)  # type: ignore[type-var]
        assert row.retrain_study == retrain_study_name(row.result.study_name)
        runs = optuna.load_study(study_name=row.retrain_study, storage=storage).trials
        values = [runs[r.trial_number].value for r in row.runs]
        assert [r.seed for r in row.runs] == [0, 1, 2]
        mean, sd = row.metric("bce")
        assert mean == pytest.approx(sum(values) / 3) and sd > 0  # type: ignore[arg-type]


def test_no_retrain_uses_search_values_and_says_they_are_biased(
    synthetic: SyntheticCampaign,
) -> None:
    write_power_law_campaign(synthetic, SIZES, power_law, seeds=0)
    options = ReportOptions(retrain=False, top_k=1, baselines=False)
    report = build_report(synthetic.storage, "synth", options, load_data=no_training)
    assert report.fit_source == "validation"
    assert all(not row.runs and row.retrain_study is None for row in report.rows)
    assert report.trend("horizon", 1).trend.verdict == "loss falls with size"  # type: ignore[union-attr]
    assert "validation BCE (biased)" in report.headline[0]


def test_too_few_sizes_is_said_not_fitted(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES[:2], power_law)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    assert report.trend("horizon", 1).trend.verdict == "too few sizes"  # type: ignore[union-attr]
    assert report.headline[0].startswith("h1: too few sizes for a trend (2 sizes")


def test_experiment_without_complete_trial_is_reported_not_crashed(
    synthetic: SyntheticCampaign,
) -> None:
    write_power_law_campaign(synthetic, SIZES[:3], power_law)
    synthetic.experiment("30M", 1)  # queued, nothing run yet
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    empty = next(row for row in report.rows if row.result.name == "30M_h1")
    assert empty.result.best is None and not empty.error
    assert empty.note == "no complete trial yet (queued)"
    assert report.trend("horizon", 1).trend.n_sizes == 3  # type: ignore[union-attr]


def test_unknown_campaign_is_a_user_error(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES[:1], power_law)
    with pytest.raises(UserError, match="campaign 'other' has no experiments"):
        build_report(synthetic.storage, "other", STORED_ONLY, load_data=no_training)


def test_an_experiment_whose_data_is_missing_gets_its_error_and_the_rest_goes_on(
    synthetic: SyntheticCampaign,
) -> None:
    write_power_law_campaign(synthetic, SIZES[:3], power_law)
    lost = synthetic.experiment("30M", 1, dataset="NOPE")
    synthetic.add_trial(lost, 0.5, 30_000_000, Architecture(64, 2, 2, 128))
    report = build_report(synthetic.storage, "synth", STORED_ONLY)  # real data loading
    broken = next(row for row in report.rows if row.result.name == "30M_h1")
    assert "NOPE" in broken.error and "hpotui data" in broken.error
    assert not broken.runs
    assert all(len(row.runs) == 3 for row in report.rows if row is not broken)


def test_different_data_specs_within_a_horizon_are_warned(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES[:3], power_law)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    assert report.warnings == []
    other = synthetic.experiment("30M", 1, dataset="NASDAQ")
    synthetic.add_trial(other, 0.5, 30_000_000, Architecture(64, 2, 2, 128))
    for seed in range(3):
        synthetic.add_seed(other, 0, seed, 0.5)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    assert len(report.warnings) == 1 and "h1: the experiments" in report.warnings[0]
    # the factor that varies gets its own trends
    assert {t.factor for t in report.trends} == {"horizon", "dataset"}


FRAME = ohlcv(2500)  # ~370 test windows: 12 batches of 30 days over 2 periods


def period_loader(spec: DataSpec, period: int, device: str) -> PreparedData:
    return prepare_period(FRAME, spec, test_periods(len(FRAME), spec)[period - 1],
                          torch.device("cpu"))  # fmt: skip


def test_experiments_are_compared_with_each_baseline_per_period(
    synthetic: SyntheticCampaign,
) -> None:
    """Runs that always predict 0.9 lose to every baseline on a random walk: said with
    the Holm-adjusted test; the oracle is a reference only."""
    for n in (10_000, 20_000, 40_000):
        exp = synthetic.experiment(f"{n // 1000}K", 1, periods=2)
        trial = synthetic.add_trial(exp, 0.5, n, Architecture(16, 1, 2, 32))
        for period in (1, 2):
            test = period_loader(exp.data, period, "cpu").test
            for seed in range(2):
                synthetic.add_seed(exp, trial, seed, 1.0, n, period=period,
                                   probs=[0.9] * len(test), days=[int(d) for d in test.days])  # fmt: skip
    options = ReportOptions(seeds=2, top_k=1, baselines=True)
    report = build_report(synthetic.storage, "synth", options, load_data=period_loader,
                          load_labels=lambda spec: np.full(len(FRAME), np.nan))  # fmt: skip
    tested = [c for c in report.comparisons if not c.oracle]
    assert len(tested) == 3 * 3 and all(c.holm_m == 9 for c in tested)
    assert all(c.word == "loses to" and len(c.periods) == 2 for c in tested), [
        (c.baseline, c.pooled) for c in tested
    ]
    for c in tested:
        assert c.pooled.n_windows == sum(g.n_windows for g in c.periods)
        assert c.pooled.n_runs == 4
    oracle = [c for c in report.comparisons if c.oracle]
    assert len(oracle) == 3 and all(c.word == "n/a" for c in oracle)
    assert {b.period for b in report.rows[0].baselines} == {1, 2}
    summary = next(line for line in report.headline if line.startswith("h1 against"))
    assert "models lose to logistic regression at 3 of 3 sizes (10K, 20K, 40K)" in summary
    drift = report.drift
    assert [(d.horizon, d.period) for d in drift] == [(1, 1), (1, 2)]
    assert all(math.isfinite(d.drift) for d in drift)


def test_the_demo_campaign_can_answer_its_question() -> None:
    from pathlib import Path

    from engine.campaign.config import load_campaign
    from engine.report.powerlaw import MIN_SIZES

    demo = load_campaign(Path(__file__).parents[2] / "configs" / "demo.toml")
    for horizon in {e.horizon for e in demo.experiments}:
        budgets = {e.budget for e in demo.experiments if e.horizon == horizon}
        assert len(budgets) >= max(MIN_SIZES, 6), (horizon, budgets)
    assert {e.data.split.test_periods for e in demo.experiments} == {3}
