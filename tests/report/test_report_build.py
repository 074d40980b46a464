"""The report on synthetic campaigns written into a real Optuna journal storage.

The retraining seeds are stored as `engine.report.retrain` stores them, and the data
loader fails the test if called: the report must reuse stored work, not train again.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import optuna
import pytest

from engine.dataset.spec import DataSpec
from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.report.build import ReportOptions, build_report, fit_points
from engine.report.retrain import retrain_study_name
from engine.storage.backend import open_storage
from tests.report.synth import SyntheticCampaign, write_power_law_campaign

SIZES = [100_000, 300_000, 1_000_000, 3_000_000, 10_000_000]
STORED_ONLY = ReportOptions(seeds=3, top_k=1, baselines=False, n_boot=500)


def no_training(spec: DataSpec, device: str) -> Any:
    raise AssertionError("the report trained although every seed was stored")


def power_law(n: int) -> float:
    return float(4.0 * n ** (-0.25) + 0.5)


def test_power_law_campaign_recovers_alpha(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES, power_law)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    fit = report.fits[1]
    assert report.fit_source == "test"
    assert fit.n_points == 15 and fit.n_sizes == 5
    assert fit.alpha_low is not None and fit.alpha_high is not None
    assert fit.alpha_low <= 0.25 <= fit.alpha_high
    assert fit.alpha_high - fit.alpha_low < 0.5
    assert fit.verdict == "scaling"


def test_top_configurations_and_seeds_are_all_points_of_the_fit(
    synthetic: SyntheticCampaign,
) -> None:
    """Three configurations per size, three seeds each: 9 runs per experiment, each a
    point of the fit labelled with its experiment and source trial."""
    write_power_law_campaign(synthetic, SIZES[:4], power_law, configs=3, config_noise=0.005)
    options = dataclasses.replace(STORED_ONLY, top_k=3)
    report = build_report(synthetic.storage, "synth", options, load_data=no_training)
    for row in report.rows:
        assert len(row.result.top) == 3 and len(row.runs) == 9
        assert {r.source_trial for r in row.runs} == {t.number for t in row.result.top}
        assert row.result.best is row.result.top[0]
    fit = report.fits[1]
    assert (fit.n_points, fit.n_sizes, fit.n_configs) == (36, 4, 12)
    points = fit_points(report.rows, "test")[1]
    assert len({(p.size, p.config) for p in points}) == 12


def test_flat_campaign_is_no_evidence_of_scaling(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES, lambda n: 0.6, noise=0.01, rng_seed=5)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    assert report.fits[1].verdict == "no evidence of scaling"
    assert "no evidence of scaling" in report.fits[1].summary()


def test_each_horizon_gets_its_own_fit(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES, power_law, horizon=1)
    write_power_law_campaign(synthetic, SIZES, lambda n: 0.69, horizon=5, noise=0.01, rng_seed=5)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    assert report.horizons() == [1, 5]
    assert report.fits[1].verdict == "scaling"
    assert report.fits[5].verdict == "no evidence of scaling"


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
        assert stored.user_attrs["n_params"] == best.n_params
        assert row.retrain_study == retrain_study_name(row.result.study_name)
        seeds = optuna.load_study(study_name=row.retrain_study, storage=storage).trials
        values = [seeds[r.trial_number].value for r in row.runs]
        assert [r.seed for r in row.runs] == [0, 1, 2]
        assert all(
            seeds[r.trial_number].user_attrs["source_trial"] == best.number for r in row.runs
        )
        mean, sd = row.metric("bce")
        assert mean == pytest.approx(sum(values) / 3)  # type: ignore[arg-type]
        assert sd > 0


def test_no_retrain_fits_search_values_and_says_they_are_biased(
    synthetic: SyntheticCampaign,
) -> None:
    sizes = [100_000, 200_000, 400_000, 800_000, 1_600_000, 3_200_000]
    write_power_law_campaign(synthetic, sizes, power_law, seeds=0)
    options = ReportOptions(retrain=False, top_k=1, baselines=False, n_boot=300)
    report = build_report(synthetic.storage, "synth", options, load_data=no_training)
    assert report.fit_source == "validation"
    assert all(not row.runs and row.retrain_study is None for row in report.rows)
    fit = report.fits[1]
    assert fit.n_points == len(sizes)
    # The search's best value is loss(N) - 0.01 exactly: a noiseless power law.
    assert fit.alpha == pytest.approx(0.25, abs=1e-3)


def test_too_few_budgets_is_said_not_fitted(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES[:2], power_law)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    fit = report.fits[1]
    assert fit.verdict == "too few sizes" and math.isnan(fit.alpha)
    assert "2 sizes" in fit.summary()
    write_power_law_campaign(synthetic, SIZES[2:3], power_law, rng_seed=1)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    assert report.fits[1].verdict == "too few sizes"  # three sizes: still no verdict
    assert any("h1: too few sizes for a verdict: 3 sizes" in line for line in report.headline)


def test_experiment_without_complete_trial_is_reported_not_crashed(
    synthetic: SyntheticCampaign,
) -> None:
    write_power_law_campaign(synthetic, SIZES[:3], power_law)
    synthetic.experiment("30M", 1)  # queued, nothing run yet
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    empty = next(row for row in report.rows if row.result.name == "30M_h1")
    assert empty.result.best is None and not empty.error
    assert empty.note == "no complete trial yet (queued)"
    assert report.fits[1].n_sizes == 3


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
    assert (
        build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training).warnings == []
    )
    other = synthetic.experiment("30M", 1, dataset="NASDAQ")
    synthetic.add_trial(other, 0.5, 30_000_000, Architecture(64, 2, 2, 128))
    for seed in range(3):
        synthetic.add_seed(other, 0, seed, 0.5)
    report = build_report(synthetic.storage, "synth", STORED_ONLY, load_data=no_training)
    assert len(report.warnings) == 1 and "h1: the experiments" in report.warnings[0]
    assert "2 different data specs" in report.warnings[0]


def test_the_demo_campaign_has_enough_sizes_for_a_verdict() -> None:
    from pathlib import Path

    from engine.campaign.config import load_campaign
    from engine.report.powerlaw import MIN_SIZES

    demo = load_campaign(Path(__file__).parents[2] / "configs" / "demo.toml")
    for horizon in {e.horizon for e in demo.experiments}:
        budgets = {e.budget for e in demo.experiments if e.horizon == horizon}
        assert len(budgets) >= MIN_SIZES, (horizon, budgets)
