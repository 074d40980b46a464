"""Fused groups on a CUDA GPU: the captured fused step against the eager one, members
against their solo runs, the memory estimate at K against the allocator's peak.

Skipped without CUDA (CI included); run by `bash bench/gpu_session.sh` (step `tests`).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from market_data import random_ohlcv

from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec
from engine.dataset.windows import prepare_data
from engine.model.architecture import Architecture
from engine.model.fused import FusedPatchTST
from engine.model.patchtst import PatchTST
from engine.train.config import RunOptions, TrainParams
from engine.train.fused_step import FusedAdamW, FusedStep
from engine.train.fused_trainer import train_group
from engine.train.memory import estimate_peak_bytes
from engine.train.result import TrainResult
from engine.train.step import WARMUP_GRAPH_STEPS
from engine.train.trainer import train_trial

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")
N_FEATURES = 25


def _fused(arch: Architecture, k: int, dtype: torch.dtype | None = None) -> FusedStep:
    torch.manual_seed(0)
    models = [PatchTST(arch, N_FEATURES, dropout=0.0).to(CUDA) for _ in range(k)]
    fused = FusedPatchTST.stack(models, [0.0] * k, [0.0] * k)
    return FusedStep(
        fused, FusedAdamW(fused, [1e-4] * k, [1.0] * k), autocast_dtype=dtype, cuda_graph=False
    )


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_captured_fused_step_trains_like_the_eager_one(dtype: torch.dtype | None) -> None:
    arch, k = Architecture(64, 4, 2, 256), 4
    eager, graph = _fused(arch, k, dtype), _fused(arch, k, dtype)
    graph.cuda_graph = True
    g = torch.Generator(device=CUDA).manual_seed(1)
    rates = [1e-3 * (i + 1) for i in range(k)]
    for _ in range(WARMUP_GRAPH_STEPS + 4):
        x = torch.randn(k, 128, 60, N_FEATURES, device=CUDA, generator=g)
        y = (x[:, :, -1, 0] > 0).float()
        a, b = eager(x, y, rates), graph(x, y, rates)
        assert torch.allclose(a, b, atol=1e-3 if dtype is None else 3e-2)
    assert graph._graph is not None  # replayed, not eager all along
    assert torch.allclose(eager.model.rows, graph.model.rows, atol=1e-3 if dtype is None else 3e-2)


def test_members_equal_their_solo_runs_on_cuda() -> None:
    spec = DataSpec(
        context_len=20,
        patch_len=5,
        stride=5,
        labels=LabelSpec(horizon=1),
        split=SplitSpec(min_val_windows=40),
    )
    data = prepare_data(random_ohlcv(520, 0), spec, CUDA)
    base = TrainParams(epochs=3, batch_size=32, dropout=0.0, warmup_steps=0, patience=10)
    params = [dataclasses.replace(base, seed=s, learning_rate=1e-3 * (s + 1)) for s in range(3)]
    options = RunOptions(device="cuda", precision="fp32")
    torch.backends.cuda.matmul.allow_tf32 = False
    solo = [train_trial(Architecture(16, 1, 2, 32), p, data, options) for p in params]
    fused = train_group(Architecture(16, 1, 2, 32), params, data, options)
    for f, s in zip(fused, solo, strict=True):
        assert isinstance(f, TrainResult)
        for a, b in zip(f.curve, s.curve, strict=True):
            assert a.val_loss == pytest.approx(b.val_loss, abs=1e-3)


def test_fused_estimate_within_30_percent_of_max_allocated() -> None:
    arch, k, batch = Architecture(64, 48, 2, 256), 4, 256
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(CUDA)
    before = torch.cuda.memory_allocated(CUDA)
    step = _fused(arch, k)
    x = torch.randn(k, batch, 60, N_FEATURES, device=CUDA)
    y = (torch.rand(k, batch, device=CUDA) < 0.5).float()
    for _ in range(2):
        step(x, y, [1e-4] * k)
    torch.cuda.synchronize(CUDA)
    peak = torch.cuda.max_memory_allocated(CUDA) - before
    estimate = estimate_peak_bytes(arch, N_FEATURES, batch, device_type="cuda", fused=k)
    assert 0.7 * peak <= estimate <= 1.3 * peak, (estimate, peak)
