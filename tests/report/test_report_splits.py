"""The report's split section: sizes, dates and label rates per experiment (markdown and
JSON), the same facts `hpotui check` prints, from the processed dataset on disk."""

from __future__ import annotations

import json
from typing import Any

from engine.dataset.build import ensure_dataset
from engine.dataset.manifest import load_processed
from engine.dataset.spec import DataSpec
from engine.dataset.splits import split_facts
from engine.model.architecture import Architecture
from engine.report.build import ReportOptions, build_report
from engine.report.files import write_report
from engine.report.tables import markdown
from tests.report.synth import SyntheticCampaign, data_spec

ARCH = Architecture(d_model=16, n_layers=1, n_heads=2, d_ff=32)
NO_WORK = ReportOptions(seeds=0, retrain=False, baselines=False)


def no_training(spec: DataSpec, period: int, device: str) -> Any:
    raise AssertionError("split facts must not need prepared windows")


def test_report_shows_each_experiments_split_facts(synthetic: SyntheticCampaign) -> None:
    ensure_dataset("SP500", "a25", 1)
    for horizon in (1, 5):
        exp = synthetic.experiment("1K", horizon)
        synthetic.add_trial(exp, 0.6, 1000, ARCH)
    report = build_report(synthetic.storage, "synth", NO_WORK, load_data=no_training)

    frame, _ = load_processed("SP500", "a25", 1)
    expected = {h: split_facts(frame, data_spec(h)) for h in (1, 5)}
    assert report.splits == {"1K_h1": expected[1], "1K_h5": expected[5]}
    text = markdown(report)
    assert "## Splits: windows, dates and label rates" in text
    for h, facts in expected.items():
        for info in facts.splits:
            row = (
                f"| 1K_h{h} | rolling | {info.name} | {info.size} | {info.start} | {info.end} | "
                f"{info.label_rate:.3f} |"
            )
            assert row in text
        for drift in facts.drifts():
            assert f"- 1K_h{h}: {drift}" in text
    assert f"{expected[1].gap}, {expected[5].gap} windows dropped" in text

    # the walk-forward periods, from the same processed data: one here (test_periods 1)
    assert report.periods["1K_h1"][0]["test"]["windows"] == expected[1].get("test").size
    assert "## Test periods (walk-forward)" in text

    written = {p.name: p for p in write_report(report)}
    stored = json.loads(written["report.json"].read_text())["splits"]
    assert stored["1K_h5"]["splits"][2]["label_rate"] == expected[5].get("test").label_rate
    assert stored["1K_h1"]["drift_warnings"] == expected[1].drifts()


def test_missing_dataset_is_said_in_the_section_not_a_crash(synthetic: SyntheticCampaign) -> None:
    exp = synthetic.experiment("1K", 1, dataset="NOPE")
    synthetic.add_trial(exp, 0.6, 1000, ARCH)
    report = build_report(synthetic.storage, "synth", NO_WORK, load_data=no_training)
    assert isinstance(report.splits["1K_h1"], str) and "NOPE" in report.splits["1K_h1"]
    assert "| 1K_h1 | rolling | - |" in markdown(report)
