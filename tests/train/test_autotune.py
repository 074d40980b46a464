"""Run choices by measurement: the choice logic on injected step times, the per-machine
cache, the rules where nothing is timed, one real calibration, and the trainer and
`hpotui hw` using the cache."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine.model.architecture import Architecture
from engine.model.patchtst import attention_backend, set_attention_backend
from engine.train import autotune, run_choice_cache
from engine.train.autotune import Candidate, calibrate, choose_run
from engine.train.config import RunOptions
from engine.train.run_choice_cache import RunChoice

TINY = Architecture(d_model=16, n_layers=1, n_heads=2, d_ff=32)
CPU = torch.device("cpu")
SHAPE = {"context_len": 20, "patch_len": 5, "stride": 5}


@pytest.fixture(autouse=True)
def timing_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Timing on (the suite runs by the rules), a cache of this test's own; the process's
    threads and attention kernel put back afterwards."""
    monkeypatch.setenv("HPOTUI_AUTOTUNE", "on")
    monkeypatch.setenv("HPOTUI_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(run_choice_cache, "memory", {})
    threads, backend = torch.get_num_threads(), attention_backend()
    yield tmp_path / "autotune.json"
    torch.set_num_threads(threads)
    set_attention_backend(backend)


class FakeTimer:
    """Seconds per step by candidate label (default 1.0); counts the calls."""

    def __init__(self, **ms: float) -> None:
        self.ms = {k.replace("_", "/"): v for k, v in ms.items()}
        self.calls: list[str] = []

    def __call__(self, c: Candidate) -> float:
        self.calls.append(c.label)
        return self.ms.get(c.label, 100.0) / 1e3


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({}, ("fp32", "sdpa", 4)),  # all equal: the defaults
        ({"bf16_sdpa_4t": 50.0}, ("bf16", "sdpa", 4)),  # bf16 twice as fast
        ({"bf16_sdpa_4t": 95.0}, ("fp32", "sdpa", 4)),  # 5% is noise: fp32 stays
        ({"fp32_math_4t": 70.0}, ("fp32", "math", 4)),
        ({"fp32_sdpa_1t": 60.0, "bf16_sdpa_1t": 30.0}, ("bf16", "sdpa", 1)),  # threads first
        ({"fp32_sdpa_2t": 80.0, "fp32_math_2t": 50.0}, ("fp32", "math", 2)),
    ],
)
def test_choice_follows_the_step_times(
    times: dict[str, float], expected: tuple[str, str, int]
) -> None:
    timer = FakeTimer(**times)
    winner, figures = calibrate(["fp32", "bf16"], [4, 2, 1], timer)
    assert (winner.precision, winner.attention, winner.threads) == expected
    assert figures["threads"]["fp32/sdpa/4t"] == pytest.approx(
        times.get("fp32_sdpa_4t", 100.0) / 1e3
    )
    assert list(figures) == ["threads", "precision", "attention"]
    for stage, timed in figures.items():  # each stage's figures name what it compared
        assert len(timed) >= 2, stage
    # the thread counts are timed at fp32/sdpa, before precision and attention
    assert timer.calls[:3] == ["fp32/sdpa/4t", "fp32/sdpa/2t", "fp32/sdpa/1t"]


def test_a_far_slower_or_failing_candidate_is_not_timed_again() -> None:
    def timer(c: Candidate) -> float:
        calls.append(c.label)
        if c.precision == "bf16":
            raise RuntimeError("bf16 not supported here")
        return {"fp32/sdpa/2t": 0.5, "fp32/sdpa/1t": 0.001}.get(c.label, 0.001)

    calls: list[str] = []
    winner, figures = calibrate(["fp32", "bf16"], [2, 1], timer)
    assert winner == Candidate("fp32", "sdpa", 1)
    assert calls.count("fp32/sdpa/2t") == 1  # 500x slower after one round
    assert calls.count("bf16/sdpa/1t") == 1 and "bf16/sdpa/1t" not in figures["precision"]
    assert figures["threads"]["fp32/sdpa/2t"] == 0.5


def test_choice_is_cached_per_machine_and_class(
    timing_on: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = RunOptions(threads=2)
    timer = FakeTimer(fp32_sdpa_1t=50.0, bf16_sdpa_1t=10.0)
    first = choose_run(TINY, 7, 64, CPU, options, timer=timer, **SHAPE)
    assert first.source == "measured" and (first.precision, first.threads) == ("bf16", 1)
    assert first.figures["precision"] == {"fp32/sdpa/1t": 50.0, "bf16/sdpa/1t": 10.0}
    assert first.measured_on == TINY.label
    stored = json.loads(timing_on.read_text())["entries"]
    assert list(stored) == [first.key] and torch.__version__ in first.key
    # the same class (batch 50 rounds up to 64 too): from the cache, nothing timed
    again = FakeTimer()
    cached = choose_run(TINY, 7, 50, CPU, options, timer=again, **SHAPE)
    assert again.calls == [] and cached.source == "cached"
    assert dataclasses.replace(cached, source="measured") == first
    # another class, another machine (torch version or CPU), another thread share: timed
    for change in (
        lambda: choose_run(TINY, 7, 256, CPU, options, timer=again, **SHAPE),
        lambda: choose_run(TINY, 7, 64, CPU, RunOptions(threads=1), timer=again, **SHAPE),
        lambda: choose_run(
            TINY, 7, 64, CPU, RunOptions(threads=2, dropout_sites=()), timer=again, **SHAPE
        ),
    ):
        before = len(again.calls)
        assert change().source == "measured" and len(again.calls) > before
    monkeypatch.setattr(run_choice_cache, "memory", {})
    monkeypatch.setattr(run_choice_cache, "machine", lambda: "Other CPU | torch 9.9")
    moved = FakeTimer()
    assert choose_run(TINY, 7, 64, CPU, options, timer=moved, **SHAPE).source == "measured"
    assert moved.calls and len(json.loads(timing_on.read_text())["entries"]) == 5


def test_explicit_precision_is_not_timed_and_off_uses_the_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timer = FakeTimer(bf16_sdpa_1t=1.0)
    choice = choose_run(
        TINY, 7, 64, CPU, RunOptions(precision="fp32", threads=1), timer=timer, **SHAPE
    )
    assert choice.precision == "fp32" and not any(c.startswith("bf16") for c in timer.calls)
    monkeypatch.setenv("HPOTUI_AUTOTUNE", "off")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    ruled = choose_run(TINY, 7, 128, CPU, RunOptions(threads=1), timer=timer, **SHAPE)
    assert (ruled.source, ruled.precision, ruled.attention) == ("rule", "fp32", "sdpa")


def test_a_damaged_cache_is_measured_again_and_rewritten(timing_on: Path) -> None:
    timing_on.write_text("{not json")
    choice = choose_run(TINY, 7, 64, CPU, RunOptions(threads=1), timer=FakeTimer(), **SHAPE)
    assert choice.source == "measured"
    assert list(json.loads(timing_on.read_text())["entries"]) == [choice.key]


def test_a_real_calibration_times_every_candidate_and_keeps_the_rng(timing_on: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    options = RunOptions(threads=1, dropout_sites=("attention", "ffn_inner"))
    choice = autotune.apply_run_choice(TINY, 7, 32, CPU, options, **SHAPE)
    assert torch.equal(torch.rand(3), expected)  # the trial's seeded draws are unchanged
    assert choice.source == "measured" and choice.cost_s > 0
    assert set(choice.figures) == {"precision", "attention"}  # a 1-thread share: no stage
    assert set(choice.figures["precision"]) == {"fp32/sdpa/1t", "bf16/sdpa/1t"}
    assert any(label.endswith("math/1t") for label in choice.figures["attention"])
    for timed in choice.figures.values():
        assert all(0 < ms < float("inf") for ms in timed.values())
    # applied to this process
    assert torch.get_num_threads() == 1 and attention_backend() == choice.attention
    assert choose_run(TINY, 7, 32, CPU, options, **SHAPE).source == "cached"


def test_trainer_runs_with_the_cached_choice_and_records_it(timing_on: Path) -> None:
    from test_trainer import BASE, prepared

    from engine.train.trainer import Trainer

    data = prepared()
    options = RunOptions(threads=1)
    # a cached choice that differs from every rule: bf16 without AMX, math attention
    timer = FakeTimer(bf16_sdpa_1t=10.0, bf16_math_1t=5.0)
    planted = choose_run(TINY, data.n_features, BASE.batch_size, CPU, options, timer=timer, **SHAPE)
    assert (planted.precision, planted.attention) == ("bf16", "math")
    trainer = Trainer(TINY, dataclasses.replace(BASE, epochs=1), data, options)
    assert {p.dtype for p in trainer.model.parameters()} == {torch.bfloat16}
    assert attention_backend() == "math"
    result = trainer.run()
    recorded = RunChoice.from_dict(result.extra["run_choice"])
    assert recorded == dataclasses.replace(planted, source="cached")
    assert result.extra["precision"] == "bfloat16"


def test_hw_lists_the_choices_measured_here(timing_on: Path) -> None:
    from hpotui.commands.hw import run_choice_rows

    assert "none yet" in run_choice_rows()[0][1]
    choice = choose_run(
        TINY, 7, 64, CPU, RunOptions(threads=1), timer=FakeTimer(fp32_math_1t=10.0), **SHAPE
    )
    rows = run_choice_rows()
    assert rows[0][1].startswith("1 measured here") and str(timing_on) in rows[0][1]
    name, value = rows[1]
    assert "d16 L1 h2 n4 b64" in name and "dropout residual" in name
    assert value.startswith("fp32 · math · 1 thread(s)")
    assert "attention: fp32/sdpa/1t 100.0 ms, fp32/math/1t 10.0 ms" in value
    assert choice.key.endswith(name.strip().replace(" · ", " | "))
    done = subprocess.run(
        [sys.executable, "-m", "hpotui.cli", "hw"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "run choices" in done.stdout and "1 measured here" in done.stdout
