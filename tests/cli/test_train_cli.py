"""`hpotui train` on the embedded S&P 500 sample: metrics, JSON, horizon, errors."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine.dataset.build import ensure_dataset
from engine.dataset.labels import make_labels
from engine.dataset.manifest import load_processed
from engine.dataset.spec import DataSpec, LabelSpec
from engine.errors import UserError
from engine.model.grid import architecture_grid, parse_budget
from hpotui.cli import main
from hpotui.commands.train import choose_arch

TINY = ["--arch", "16,1,2,32", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One workspace with SP500/a25/v1 built once for the module."""
    root = tmp_path_factory.mktemp("train_cli")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPOTUI_HOME", str(root))
        ensure_dataset("SP500", "a25", 1)
        yield root


@pytest.fixture(autouse=True)
def keep_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def train_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    assert main(["train", *TINY, "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_json_result_uses_the_requested_horizon(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame, _ = load_processed("SP500", "a25", 1)
    rates = {}
    for horizon in (1, 5):
        result = train_json(capsys, "--epochs", "2", "--horizon", str(horizon), "--test")
        assert result["epochs_run"] == 2 and len(result["curve"]) == 2
        assert result["value"] == min(e["val_loss"] for e in result["curve"])
        assert result["extra"]["data"]["data"]["labels"]["horizon"] == horizon
        val = result["extra"]["data"]["splits"][1]
        labels = make_labels(frame, LabelSpec(horizon=horizon))
        in_val = labels[val["start"] : val["end"]]
        assert val["size"] == len(in_val)
        assert result["val_metrics"]["label_rate"] == pytest.approx(in_val.mean())
        assert result["test_metrics"]["n"] == result["extra"]["data"]["splits"][2]["size"]
        rates[horizon] = result["val_metrics"]["label_rate"]
    assert rates[5] > rates[1] + 0.2


def test_training_flags_reach_the_trainer(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = train_json(
        capsys,
        "--epochs", "1",
        "--lr", "1e-3",
        "--batch-size", "128",
        "--weight-decay", "0.01",
        "--warmup-steps", "7",
        "--dropout", "0.2",
        "--head-dropout", "0.1",
        "--grad-clip", "0.5",
        "--patience", "3",
        "--seed", "4",
        "--split", "chunks",
        "--normalization", "revin",
    )  # fmt: skip
    assert result["extra"]["params"] == {
        "learning_rate": 1e-3,
        "epochs": 1,
        "batch_size": 128,
        "weight_decay": 0.01,
        "warmup_steps": 7,
        "dropout": 0.2,
        "head_dropout": 0.1,
        "grad_clip": 0.5,
        "patience": 3,
        "seed": 4,
    }
    assert result["extra"]["steps_per_epoch"] == result["extra"]["data"]["splits"][0]["size"] // 128
    assert result["extra"]["data"]["data"]["split"]["mode"] == "chunks"
    assert result["extra"]["data"]["normalization"]["method"] == "revin"
    assert result["test_metrics"] is None  # no --test: the test split is not looked at


def test_dropout_sites_flag_reaches_the_trainer(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = {
        "reference": ["embedding", "attention", "ffn_inner", "ffn_out"],
        "ffn_out, attention": ["attention", "ffn_out"],
    }
    for flag, expected in sites.items():
        result = train_json(capsys, "--epochs", "1", "--dropout-sites", flag)
        assert result["extra"]["options"]["dropout_sites"] == expected


def test_text_output_lists_the_metrics(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *TINY, "--epochs", "1", "--test"]) == 0
    out = capsys.readouterr().out
    assert "validation BCE" in out and "best epoch 1 of 1" in out
    assert re.search(r"params, cpu (fp32|bfloat16), micro-batch", out)  # what it ran in
    assert re.search(r"run choice: (fp32|bf16), (sdpa|math) attention, 1 thread", out)
    for label in ("ROC-AUC", "PR-AUC", "precision", "recall", "f1", "best F1 on val", "test"):
        assert label in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "16,1,3,32"], "n_heads 3 does not divide d_model 16"),
        (["--arch", "16,1,2"], "is not four integers"),
        (["--task", "up_1pct"], "unknown task"),
        (["--min-val-windows", "5000"], "validation split has 716 windows, below the minimum"),
        (["--purge", "0"], "shorter than the horizon"),
        (["--batch-size", "0"], "batch_size must be >= 1"),
        (["--budget", "2M", "--arch-index", "999"], "outside the 2M grid"),
        (["--dropout-sites", "attention,ffn_iner"], "unknown dropout site 'ffn_iner'"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = ["train", "--threads", "1", "--quiet", "--epochs", "1"]
    assert main([*base, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_budget_picks_the_closest_grid_entry_or_the_index() -> None:
    spec = DataSpec()
    grid = architecture_grid("2M", 25)

    def args(**given: object) -> argparse.Namespace:
        return argparse.Namespace(**{"arch": None, "budget": "2M", "arch_index": None, **given})

    closest = choose_arch(args(), 25, spec)
    gaps = [abs(e.n_params - parse_budget("2M")) for e in grid]
    assert closest == grid[gaps.index(min(gaps))].arch
    assert choose_arch(args(arch_index=3), 25, spec) == grid[3].arch
    with pytest.raises(UserError, match="needs --budget"):
        choose_arch(args(arch="16,1,2,32", arch_index=1), 25, spec)


def test_real_process_prints_json_on_stdout_progress_on_stderr(home: Path) -> None:
    env = {**os.environ, "HPOTUI_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "hpotui.cli", "train", "--arch", "16,1,2,32", "--threads", "1",
         "--epochs", "2", "--json"],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["epochs_run"] == 2
    assert "epoch   1/2" in done.stderr and "epoch   2/2" in done.stderr
    assert "SP500/a25/v1" in done.stderr and "horizon 1" in done.stderr


def test_a_terminal_gets_a_bar_per_epoch_and_a_line_with_losses_at_each_end() -> None:
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from hpotui.commands.train_progress import EpochProgress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, highlight=False)
    progress = EpochProgress(2, 4, 128, quiet=False, console=console)
    for epoch in (1, 2):
        for _ in range(5):  # the trainer checks before each step and once after the epoch
            assert progress.step() is False  # never asks the trainer to stop
        report = SimpleNamespace(
            epoch=epoch, train_loss=0.69, val_loss=0.68, learning_rate=1e-3, elapsed_s=1.0
        )
        progress.epoch_ended(report)
    text = out.getvalue()
    assert "epoch 1/2" in text and "4/4" in text and "samples/s" in text  # the bar
    assert "epoch   1/2  train 0.6900  val 0.6800" in text
    assert "epoch   2/2  train 0.6900" in text
    assert progress._bar is None  # closed after the last epoch
