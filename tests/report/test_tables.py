"""The report's files: what they say and that they are written whole."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from engine.report.build import ReportOptions, build_report
from engine.report.tables import holdout_table, markdown, report_dir, search_table, write_report
from tests.report.synth import SyntheticCampaign, write_power_law_campaign

SIZES = [100_000, 300_000, 1_000_000, 3_000_000]
OPTIONS = ReportOptions(seeds=3, baselines=False, n_boot=300)


def fail(*_: Any) -> Any:
    raise AssertionError("nothing should be trained")


def test_flat_campaign_report_says_no_evidence(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES, lambda n: 0.6, noise=0.01, rng_seed=5)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    text = markdown(report)
    assert "- h1: no evidence of scaling: alpha = " in text
    assert "| 1 | 12 | 4 |" in text  # horizon, points, sizes
    assert "each retrained seed's test BCE (3 seed(s)" in text


def test_tables_show_trial_numbers_and_mean_sd(synthetic: SyntheticCampaign) -> None:
    write_power_law_campaign(synthetic, SIZES[:3], lambda n: 10 * n**-0.3 + 0.4)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    search = search_table(report)
    assert search[0][:4] == ["100K_h1", "100K", "1", "#1"]  # trial 1 is the better one
    assert search[0][6] == "100,000" and search[0][7] == "#0, #1, #2"
    tested = holdout_table(report)
    mean, sd = report.rows[0].metric("bce")
    assert tested[0][1] == f"{mean:.4f} ± {sd:.4f}"
    assert tested[0][6] == "-"  # baselines were not computed


def test_write_report_writes_whole_files(synthetic: SyntheticCampaign, workspace: Path) -> None:
    write_power_law_campaign(synthetic, SIZES, lambda n: 10 * n**-0.3 + 0.4)
    report = build_report(synthetic.storage, "synth", OPTIONS, load_data=fail)
    written = write_report(report)
    folder = report_dir("synth")
    assert folder == workspace / "outputs" / "synth" / "report"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in written)
    seeds = list(csv.DictReader(io.StringIO((folder / "seeds.csv").read_text())))
    assert len(seeds) == 12 and {s["seed"] for s in seeds} == {"0", "1", "2"}
    data = json.loads((folder / "report.json").read_text())
    assert data["fit_source"] == "test" and data["fits"]["1"]["verdict"] == "scaling"
    assert [e["best_trial"] for e in data["experiments"]] == [1, 1, 1, 1]
