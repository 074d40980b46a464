"""The report's files: what they say and that they are written whole."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from engine.report.build import ReportOptions, build_report
from engine.report.tables import (
    config_table,
    holdout_table,
    markdown,
    mean_sd,
    report_dir,
    write_report,
)
from tests.report.synth import SyntheticCampaign, write_power_law_campaign

SIZES = [100_000, 300_000, 1_000_000, 3_000_000]
OPTIONS = ReportOptions(seeds=3, top_k=1, baselines=False, n_boot=300)
STEP_FILES = {
    "report.md",
    "report.json",
    "experiments.csv",
    "configurations.csv",
    "runs.csv",
    "baselines.csv",
    "comparisons.csv",
    "fits.csv",
}


def fail(*_: Any) -> Any:
    raise AssertionError("nothing should be trained")


def test_flat_campaign_report_says_no_evidence(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES, lambda n: 0.6, noise=0.01, rng_seed=5)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    text = markdown(report)
    assert "- h1: no evidence of scaling: alpha = " in text
    assert "| 1 | test BCE | 12 | 4 | 4 |" in text  # horizon, of, runs, sizes, configs
    assert "top 1 configurations x 3 seed(s)" in text


def test_tables_show_trial_numbers_and_mean_sd(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES[:3], lambda n: 10 * n**-0.3 + 0.4)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    configs = config_table(report)
    assert configs[0][:4] == ["100K_h1", "1", "1", "#1"]  # trial 1 is the better one
    assert configs[0][6] == "100,000" and configs[0][8] == "#0, #1, #2"
    tested = holdout_table(report)
    mean, sd = report.rows[0].metric("bce")
    assert tested[0][:3] == ["100K_h1", "3", f"{mean:.4f} ± {sd:.4f}"]


def test_the_val_bce_column_is_bce_whatever_the_objective(synthetic: SyntheticCampaign) -> None:
    """Under objective = "val_auc" a trial's value is 1 - ROC-AUC: the column named
    validation BCE shows its stored BCE, the ranking still follows the objective."""
    from engine.model.architecture import Architecture

    exp = synthetic.experiment("100K", 1)
    arch = Architecture(16, 2, 2, 32)
    better = synthetic.add_trial(exp, 0.30, 100_000, arch, val_bce=0.612)  # AUC 0.70
    synthetic.add_trial(exp, 0.45, 100_000, arch, val_bce=0.598)  # AUC 0.55
    for seed in range(3):  # its retraining is stored already: nothing trains
        synthetic.add_seed(exp, better, seed, 0.6, 100_000)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    (row,) = config_table(report)
    assert row[3] == f"#{better}" and row[4] == "0.6120"
    assert "0.3000" not in " ".join(row)


def test_undefined_metrics_are_n_a_and_not_averaged_in(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES[:1], lambda n: 0.6)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    row = report.rows[0]
    for run, value in zip(row.runs, (0.25, math.nan, math.nan), strict=True):
        run.test_metrics["roc_auc"] = value
    assert row.metric("roc_auc") == (0.25, row.metric("roc_auc")[1])
    assert mean_sd(row, "roc_auc") == "0.2500 (1 of 3 defined)"
    for run in row.runs:
        run.test_metrics["roc_auc"] = math.nan
    assert mean_sd(row, "roc_auc") == "n/a"


def test_write_report_writes_each_steps_table(
    synthetic: SyntheticCampaign, workspace: Path
) -> None:
    write_power_law_campaign(synthetic, SIZES, lambda n: 10 * n**-0.3 + 0.4)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    written = write_report(report)
    folder = report_dir("synth")
    assert folder == workspace / "outputs" / "synth" / "report"
    assert {p.name for p in folder.iterdir()} == {p.name for p in written} == STEP_FILES
    runs = list(csv.DictReader(io.StringIO((folder / "runs.csv").read_text())))
    assert len(runs) == 12 and {s["seed"] for s in runs} == {"0", "1", "2"}
    configs = list(csv.DictReader(io.StringIO((folder / "configurations.csv").read_text())))
    assert [c["search_trial"] for c in configs] == ["1"] * 4
    data = json.loads((folder / "report.json").read_text())
    assert data["fit_source"] == "test" and data["fits"]["1"]["verdict"] == "scaling"
    assert data["fits"]["1"]["sentence"].startswith("h1: loss falls with size")
    assert data["headline"] == report.headline
    assert [e["best_trial"] for e in data["experiments"]] == [1, 1, 1, 1]
