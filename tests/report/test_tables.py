"""The report's files: what they say, in which order, and that they are written whole."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from engine.report.build import ReportOptions, build_report
from engine.report.files import report_dir, write_report
from engine.report.tables import config_table, holdout_table, markdown, mean_sd
from tests.report.synth import SyntheticCampaign, write_power_law_campaign

SIZES = [100_000, 200_000, 400_000, 800_000, 1_600_000]
OPTIONS = ReportOptions(seeds=3, top_k=1, baselines=False)
STEP_FILES = {
    "report.md",
    "report.json",
    "experiments.csv",
    "configurations.csv",
    "runs.csv",
    "baselines.csv",
    "comparisons.csv",
    "trends.csv",
    "trend_differences.csv",
    "scaling_h1.png",
    "scaling_h1.svg",
}


def fail(*_: Any) -> Any:
    raise AssertionError("nothing should be trained")


def test_the_report_opens_with_what_the_design_can_support(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES[:4], lambda n: 0.6, noise=0.01, rng_seed=5)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    text = markdown(report, ["scaling_h1.png"])
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[:3] == ["## What this campaign can support", "## Headline", "## Figures"]
    assert "- h1: 4 sizes, too few for a power-law exponent (needs 5); 1 test period; " \
        "smallest slope detected with 80% power: 0." in text  # fmt: skip
    assert "- complete search trials: 100K_h1 2/4, 200K_h1 2/4" in text
    assert "![scaling_h1.png](scaling_h1.png)" in text
    assert "- h1: no detectable trend in test BCE with size: " in text
    assert "| h1 | all | 4 | 12 |" in text  # group, period, sizes, runs
    assert "top 1 configurations x 3 seed(s)" in text
    assert "unbounded" not in text and "alpha = 0.00" not in text


def test_tables_show_trial_numbers_objective_and_mean_sd(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES[:3], lambda n: 10 * n**-0.3 + 0.4)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    configs = config_table(report)
    assert configs[0][:4] == ["100K_h1", "1", "1", "#1"]  # trial 1 is the better one
    assert configs[0][4].startswith("val_bce 0.") and configs[0][7] == "100,000"
    tested = holdout_table(report)
    mean, sd = report.rows[0].metric("bce")
    assert tested[0][:3] == ["100K_h1", "3", f"{mean:.4f} ± {sd:.4f}"]


def test_configurations_are_ranked_by_the_objective_and_show_bce(
    synthetic: SyntheticCampaign,
) -> None:
    """Under objective = "val_auc" a trial's value is 1 - ROC-AUC: the table ranks by it,
    shows it as the AUC, and the validation BCE column shows the stored BCE."""
    from engine.model.architecture import Architecture

    exp = synthetic.experiment("100K", 1, objective="val_auc")
    arch = Architecture(16, 2, 2, 32)
    better = synthetic.add_trial(exp, 0.30, 100_000, arch, val_bce=0.612)  # AUC 0.70
    synthetic.add_trial(exp, 0.45, 100_000, arch, val_bce=0.598)  # AUC 0.55
    for seed in range(3):  # its retraining is stored already: nothing trains
        synthetic.add_seed(exp, better, seed, 0.6, 100_000)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    (row,) = config_table(report)
    assert row[3] == f"#{better}" and row[5] == "0.6120"
    assert row[4] == "val_auc 0.7000"


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


def test_write_report_writes_each_steps_table_and_figure(
    synthetic: SyntheticCampaign, workspace: Path
) -> None:
    write_power_law_campaign(synthetic, SIZES, lambda n: 10 * n**-0.3 + 0.4, periods=2)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    written = write_report(report)
    folder = report_dir("synth")
    assert folder == workspace / "outputs" / "synth" / "report"
    assert {p.name for p in folder.iterdir()} == {p.name for p in written} == STEP_FILES
    assert (folder / "scaling_h1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = list(csv.DictReader(io.StringIO((folder / "runs.csv").read_text())))
    assert len(runs) == 30 and {s["period"] for s in runs} == {"1", "2"}
    trends = list(csv.DictReader(io.StringIO((folder / "trends.csv").read_text())))
    assert [(t["level"], t["period"]) for t in trends] == [("1", "all"), ("1", "1"), ("1", "2")]
    assert trends[0]["verdict"] == "loss falls with size"
    data = json.loads((folder / "report.json").read_text())
    assert data["fit_source"] == "test" and data["figures"] == ["scaling_h1.png"]
    assert data["headline"] == report.headline and data["adequacy"]["lines"]
    assert data["trends"][0]["verdict"] == "loss falls with size"
    assert [e["top"][0]["trial"] for e in data["experiments"]] == [1] * 5
    text = (folder / "report.md").read_text()
    assert "![scaling_h1.png](scaling_h1.png)" in text
    assert not list(folder.glob(".*.tmp*"))  # nothing half-written left behind
