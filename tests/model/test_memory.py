"""Memory guard: the estimate tracks measured peaks; micro-batches shrink; no-fit fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.model.architecture import Architecture
from engine.train.memory import available_memory_bytes, estimate_peak_bytes, plan_micro_batch
from engine.train.result import TrialDoesNotFit

MEASURE = Path(__file__).with_name("_measure_peak.py")
ROOT = Path(__file__).resolve().parents[2]


CASES = [
    (Architecture(256, 2, 4, 1024), 256),  # activations dominate
    (Architecture(32, 4, 2, 64), 2048),  # narrow, many tokens
    (Architecture(1024, 2, 8, 4096), 8),  # weights and AdamW state dominate
]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_estimate_within_30_percent_of_measured_rss_peak(precision: str) -> None:
    """bf16: a bf16 model with fp32 masters, as `precision = "auto"` trains on CPUs
    with AMX."""
    suffix = ",bf16" if precision == "bf16" else ""
    groups = [",".join(str(v) for v in (*a.to_dict().values(), 25, b)) + suffix for a, b in CASES]
    out = subprocess.run(
        [sys.executable, str(MEASURE), *groups],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=240,
    )
    measured = [int(line) for line in out.stdout.split()]
    assert len(measured) == len(CASES)
    for (arch, batch), peak in zip(CASES, measured, strict=True):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        estimate = estimate_peak_bytes(arch, 25, batch, dtype=dtype)
        assert 0.7 * peak <= estimate <= 1.3 * peak, (arch.label, estimate, peak)


def test_estimate_covers_the_reference_dropout_sites() -> None:
    """`dropout_sites = "reference"` saves a d_ff-wide mask per layer: its estimate grows,
    and stays within 30% of the measured peak of such a model."""
    from engine.model.dropout_sites import PRESETS

    arch, batch = Architecture(128, 8, 4, 512), 512
    out = subprocess.run(
        [sys.executable, str(MEASURE), f"128,8,4,512,25,{batch},ref"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=240,
    )
    peak = int(out.stdout.split()[0])
    estimate = estimate_peak_bytes(arch, 25, batch, dropout_sites=PRESETS["reference"])
    assert estimate > estimate_peak_bytes(arch, 25, batch)
    assert 0.7 * peak <= estimate <= 1.3 * peak, (estimate, peak)


def test_estimate_grows_with_batch_layers_and_precision() -> None:
    arch = Architecture(128, 4, 4, 512)
    assert estimate_peak_bytes(arch, 25, 64) < estimate_peak_bytes(arch, 25, 128)
    assert estimate_peak_bytes(arch, 25, 64) < estimate_peak_bytes(
        Architecture(128, 8, 4, 512), 25, 64
    )
    bf16 = estimate_peak_bytes(arch, 25, 256, dtype=torch.bfloat16, device_type="cuda")
    assert bf16 < estimate_peak_bytes(arch, 25, 256, device_type="cuda")


def test_micro_batch_is_the_whole_batch_when_it_fits() -> None:
    arch = Architecture(64, 2, 2, 128)
    cpu = torch.device("cpu")
    assert plan_micro_batch(arch, 25, 256, cpu, available=2**34) == 256


def test_micro_batch_shrinks_to_the_largest_that_fits() -> None:
    arch = Architecture(256, 8, 4, 1024)
    cpu = torch.device("cpu")
    limit = estimate_peak_bytes(arch, 25, 100) * 1.3  # 80% of it is the usable share
    micro = plan_micro_batch(arch, 25, 512, cpu, available=int(limit))
    assert 1 <= micro < 512
    assert estimate_peak_bytes(arch, 25, micro) <= 0.8 * limit
    assert estimate_peak_bytes(arch, 25, micro + 1) > 0.8 * limit


def test_trial_that_cannot_fit_at_batch_one_fails_with_the_reason() -> None:
    arch = Architecture(2048, 64, 8, 8192)  # ~3.2B parameters
    with pytest.raises(
        TrialDoesNotFit, match=r"d2048-L64-h8-ff8192 does not fit on cpu.*micro-batch 1"
    ):
        plan_micro_batch(arch, 25, 128, torch.device("cpu"), available=8 * 2**30)


def test_available_memory_on_cpu_is_positive() -> None:
    assert available_memory_bytes(torch.device("cpu")) > 0
