"""Training on a CUDA GPU: the CUDA-graph step, the memory guard's estimate, NVML readings.

These run only where torch sees a CUDA device (skipped elsewhere, CI included). They are
run on a lent GPU machine by `bench/gpu_session.sh`, which also times the GPU shapes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from market_data import random_ohlcv

from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec
from engine.dataset.windows import prepare_data
from engine.model.architecture import Architecture
from engine.model.patchtst import PatchTST
from engine.train.config import RunOptions, TrainParams
from engine.train.memory import estimate_peak_bytes
from engine.train.schedule import warmup_cosine
from engine.train.step import WARMUP_GRAPH_STEPS, TrainStep, build_optimizer
from engine.train.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")
N_FEATURES = 25


def _batches(n: int, size: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator(device=CUDA).manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(size, 60, N_FEATURES, device=CUDA, generator=g)
        out.append((x, (x[:, -1, 0] > 0).float()))
    return out


def _run(
    graph: bool, dtype: torch.dtype | None, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor, TrainStep, list[float]]:
    """(weights before, weights after, the step, losses) of training on `batches`."""
    torch.manual_seed(0)
    model = PatchTST(Architecture(32, 3, 2, 64), N_FEATURES, dropout=0.0).to(CUDA)
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    optimizer = build_optimizer(model, 3e-3, 1e-2, capturable=graph)
    scheduler = warmup_cosine(optimizer, warmup_steps=3, total_steps=len(batches))
    step = TrainStep(
        model, optimizer, scheduler, grad_clip=0.5, autocast_dtype=dtype, cuda_graph=graph
    )
    losses = [float(step(x, y)) for x, y in batches]
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return before, after, step, losses


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_graph_step_trains_like_the_eager_step(dtype: torch.dtype | None) -> None:
    """Same losses and weights: the schedule, clipping and AdamW all reach the replays."""
    batches = _batches(12, 64)
    batches.insert(8, _batches(1, 40, seed=9)[0])  # an odd-sized batch runs eagerly
    start, eager, _, eager_losses = _run(False, dtype, batches)
    _, graphed, step, graph_losses = _run(True, dtype, batches)
    assert step._graph is not None, "the step was never captured"
    assert graph_losses == pytest.approx(eager_losses, rel=1e-4 if dtype is None else 2e-2)
    # Adam amplifies rounding in near-zero gradients, so compare the weights' change:
    # a replay stuck at the capture-time learning rate moves them ~50% differently
    moved = torch.linalg.vector_norm(eager - start)
    gap = torch.linalg.vector_norm(graphed - eager)
    assert gap <= (0.01 if dtype is None else 0.05) * moved, (float(gap), float(moved))
    # the rate the replays read is the tensor the scheduler set: 0 after the last step
    lr = step.optimizer.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and float(lr) == pytest.approx(0.0, abs=1e-9)


CASES = [
    (Architecture(64, 48, 2, 256), 256),
    (Architecture(256, 8, 4, 1024), 512),
    (Architecture(1024, 4, 8, 4096), 64),  # weights and AdamW state dominate
]


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_estimate_within_30_percent_of_max_allocated(dtype: torch.dtype | None) -> None:
    """The guard's estimate against the allocator's peak over captured training steps."""
    for arch, batch in CASES:
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        model = PatchTST(arch, N_FEATURES).to(CUDA)
        optimizer = build_optimizer(model, 1e-3, 1e-4, capturable=True)
        step = TrainStep(model, optimizer, grad_clip=1.0, autocast_dtype=dtype, cuda_graph=True)
        for x, y in _batches(WARMUP_GRAPH_STEPS + 2, batch):
            step(x, y)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        estimate = estimate_peak_bytes(
            arch, N_FEATURES, batch, dtype=dtype or torch.float32, device_type="cuda"
        )
        print(f"{arch.label} batch {batch} {dtype}: estimate {estimate:,} peak {peak:,}")
        del model, optimizer, step
        assert 0.7 * peak <= estimate <= 1.3 * peak, (arch.label, estimate, peak)


def test_trainer_on_cuda_captures_and_learns() -> None:
    spec = DataSpec(
        context_len=20,
        patch_len=5,
        stride=5,
        labels=LabelSpec(horizon=1),
        split=SplitSpec(min_val_windows=40),
    )
    data = prepare_data(random_ohlcv(900, 0), spec, CUDA)
    params = TrainParams(
        learning_rate=3e-3, epochs=4, batch_size=64, warmup_steps=5, patience=10, seed=0
    )
    trainer = Trainer(Architecture(32, 2, 2, 64), params, data, RunOptions())
    result = trainer.run()
    assert trainer.step._graph is not None
    assert result.device.startswith("cuda")
    assert result.extra["precision"] == "bfloat16"
    assert len(result.curve) == 4 and all(r.val_loss == r.val_loss for r in result.curve)
    # the cosine schedule reached the last step: the rate read back is near zero
    assert trainer.current_lr() < 0.05 * params.learning_rate


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="needs nvidia-smi")
def test_hw_reads_what_nvidia_smi_reads() -> None:
    """`hpotui hw --json` (NVML) against nvidia-smi, read right after it."""
    out = subprocess.run(
        [sys.executable, "-m", "hpotui.cli", "hw", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    sample = json.loads(out.stdout)
    smi = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=name,memory.total,memory.used,temperature.gpu,power.draw",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(json.dumps(sample["gpus"]), "\n", smi)
    assert sample["gpu_unavailable"] is None
    rows = [[f.strip() for f in line.split(",")] for line in smi.splitlines()]
    assert len(sample["gpus"]) == len(rows)
    for gpu, (name, total, used, temp, power) in zip(sample["gpus"], rows, strict=True):
        assert gpu["name"] == name
        assert gpu["memory_total_bytes"]["value"] == pytest.approx(float(total) * 2**20, rel=0.01)
        assert gpu["memory_used_bytes"]["value"] == pytest.approx(
            float(used) * 2**20, abs=512 * 2**20
        )
        assert gpu["temperature_c"]["value"] == pytest.approx(float(temp), abs=3)
        assert gpu["power_w"]["value"] == pytest.approx(float(power), rel=0.3, abs=30)
