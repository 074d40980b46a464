"""`hpotui report` end to end: search trials trained by the real trainer on the embedded
S&P 500 data, then the real command line, twice (the second run trains nothing)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import optuna
import pytest
import torch

from engine.dataset.build import ensure_dataset
from engine.dataset.manifest import load_processed
from engine.dataset.windows import prepare_data
from engine.model.architecture import Architecture
from engine.storage.backend import open_storage
from engine.train.config import RunOptions, TrainParams
from engine.train.trainer import train_trial
from hpotui.cli import main
from tests.report.synth import SyntheticCampaign, data_spec

ARCHS = {
    "1K": Architecture(d_model=4, n_layers=1, n_heads=2, d_ff=8),
    "3K": Architecture(d_model=8, n_layers=1, n_heads=2, d_ff=16),
    "10K": Architecture(d_model=16, n_layers=1, n_heads=2, d_ff=32),
}
PARAMS = TrainParams(learning_rate=3e-3, epochs=1, batch_size=256, warmup_steps=0, patience=1)


def real_campaign() -> SyntheticCampaign:
    """One search trial per budget, trained for real, stored with the worker's attributes."""
    ensure_dataset("SP500", "a25", 1)
    frame, _ = load_processed("SP500", "a25", 1)
    spec = data_spec(1, periods=2)
    data = prepare_data(frame, spec, torch.device("cpu"))
    campaign = SyntheticCampaign("e2e")
    options = RunOptions(device="cpu", precision="fp32", threads=1)
    for budget, arch in ARCHS.items():
        exp = campaign.experiment(budget, 1, periods=2)
        result = train_trial(arch, PARAMS, data, options)
        trial = optuna.trial.create_trial(
            value=result.value,
            user_attrs={
                "architecture": arch.to_dict(),
                "n_params": result.n_params,
                "train_params": PARAMS.to_dict(),
                "metrics": result.val_metrics,
                "best_epoch": result.best_epoch,
            },
        )
        sid = campaign.storage.get_study_id_from_name(campaign.study_name(exp))
        campaign.storage.create_new_trial(sid, template_trial=trial)
    return campaign


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
    *(f"{name}.{ext}" for name in ("scaling_h1", "gap_logistic") for ext in ("png", "svg")),
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_report_runs_end_to_end_and_traces_to_stored_trials(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    campaign = real_campaign()
    # two retraining processes (engine/report/pool.py), as on a user's machine
    assert main(["report", "e2e", "--seeds", "2", "--workers", "2"]) == 0
    first = capsys.readouterr()
    # stdout is not a terminal here: the report alone on stdout; progress and each
    # run's line on stderr, with the progress bar's ETA
    assert first.err.count("trained in") == 12 and "stored)" not in first.err  # 3 x 2 x 2
    assert "ETA" in first.err and "12/12" in first.err
    assert "trained in" not in first.out and "headline" in first.out
    assert first.out.index("what this campaign can support") < first.out.index("headline")
    # the splits each experiment was scored on: windows, first..last day, label rate
    assert re.search(
        r"1K_h1, 3K_h1, 10K_h1: train \d+ windows \d{4}-\d\d-\d\d\.\.\d{4}-\d\d-\d\d "
        r"label rate 0\.\d{3} · val \d+ windows .* · test \d+ windows ",
        re.sub(r"\s+", " ", first.out),
    )

    out = workspace / "outputs" / "e2e" / "report"
    assert {p.name for p in out.iterdir()} == STEP_FILES
    storage = open_storage(campaign.url)
    rows = read_csv(out / "experiments.csv")
    assert [r["experiment"] for r in rows] == ["1K_h1", "3K_h1", "10K_h1"]
    for row in rows:
        search = optuna.load_study(study_name=row["study"], storage=storage)
        best = search.trials[int(row["best_trial"])]
        assert float(row["val_bce_search"]) == best.value
        retrain = optuna.load_study(study_name=row["retrain_study"], storage=storage)
        values = [t.value for t in retrain.trials]
        assert sorted(t.user_attrs["period"] for t in retrain.trials) == [1, 1, 2, 2]
        assert all(t.user_attrs["source_trial"] == best.number for t in retrain.trials)
        assert float(row["test_bce_mean"]) == pytest.approx(sum(values) / len(values))  # type: ignore[arg-type]
    baselines = read_csv(out / "baselines.csv")
    names = {b["baseline"] for b in baselines}
    assert names == {"constant prior", "persistence", "logistic regression", "oracle constant"}
    assert {b["period"] for b in baselines} == {"1", "2"}
    assert all(math.isfinite(float(b["test_bce"])) for b in baselines)
    trends = read_csv(out / "trends.csv")
    assert trends[0]["n_runs"] == "12" and trends[0]["n_sizes"] == "3"
    assert trends[0]["exponent"] == "not determined"
    markdown = (out / "report.md").read_text()
    assert "| 1K_h1 | 1 | 1 | #0 |" in markdown
    assert "- h1: 3 sizes, too few for a power-law exponent (needs 5); 2 test periods;" in markdown
    assert "![scaling_h1.png](scaling_h1.png)" in markdown
    assert "![gap_logistic.png](gap_logistic.png)" in markdown
    comparisons = read_csv(out / "comparisons.csv")
    assert len(comparisons) == 3 * 4 * 3  # experiments x baselines x (pooled + 2 periods)
    tested = [c for c in comparisons if c["oracle"] == "False" and c["period"] == "all"]
    assert all(c["holm_m"] == "9" for c in tested)
    for c in tested:  # a word only where the Holm-adjusted interval excludes 0
        excluded = float(c["low"]) > 0 or float(c["high"]) < 0
        assert excluded == (c["word"] in ("beats", "loses to"))

    # Everything is stored: the second run retrains nothing and reports the same numbers.
    assert main(["report", "e2e", "--seeds", "2", "--json", "--workers", "1"]) == 0
    second = capsys.readouterr()
    assert second.err.count("stored)") == 12 and "trained in" not in second.err
    assert "ETA" not in second.err  # nothing to train: no progress bar
    document = json.loads(second.out)  # --json: stdout is pure JSON
    assert document["campaign"] == "e2e" and len(document["experiments"]) == 3
    assert document["figures"] == ["scaling_h1.png", "gap_logistic.png"]
    assert read_csv(out / "experiments.csv") == rows


def test_no_results_is_one_line_and_exit_2(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "nothing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no campaign results at" in err[0]
    assert not (workspace / "outputs" / "nothing").exists()  # nothing created


def test_bad_arguments_are_user_errors(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "x", "--seeds", "-1"]) == 2
    assert "--seeds must be >= 0" in capsys.readouterr().err
    assert main(["report", str(workspace / "missing.toml")]) == 2
    assert "no such config file" in capsys.readouterr().err
    assert main(["report", "x", "--top", "0"]) == 2
    assert "--top must be >= 1" in capsys.readouterr().err
    assert main(["report", "x", "--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err
    assert main(["report", "x", "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err


def test_a_missing_sqlite_file_is_not_created(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{workspace / 'none.db'}"
    assert main(["report", "demo", "--storage", url]) == 2
    assert "no campaign results at" in capsys.readouterr().err
    assert not (workspace / "none.db").exists()
