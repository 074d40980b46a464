"""Peak RSS growth of PatchTST training steps, one forked child per architecture.

argv: groups of "d_model,n_layers,n_heads,d_ff,n_features,batch[,bf16][,kN][,ref]" (bf16: a
bf16 model with fp32 masters, as `precision = "auto"` trains on CPUs with AMX; kN: a fused
group of N trials, engine.model.fused; ref: `dropout_sites = "reference"`). Prints one line per
group: the growth in bytes of the child's peak RSS over its RSS before the model existed.
torch is imported once here and each child is a fresh fork, so every peak is its own.
"""

from __future__ import annotations

import os
import resource
import sys

import psutil
import torch

from engine.model.architecture import Architecture
from engine.model.fused import FusedPatchTST
from engine.model.patchtst import PatchTST
from engine.train.fused_step import FusedAdamW, FusedStep
from engine.train.step import TrainStep, build_optimizer


def _train(
    arch: Architecture,
    n_features: int,
    batch: int,
    steps: int,
    dtype: torch.dtype | None,
    fused: int = 1,
    sites: str = "residual",
) -> None:
    if fused > 1:
        _train_fused(arch, n_features, batch, steps, dtype, fused)
        return
    model = PatchTST(arch, n_features, dropout_sites=sites).to(dtype)  # as the trainer does
    optimizer = build_optimizer(model, 1e-3, 1e-4)
    step = TrainStep(model, optimizer, grad_clip=1.0)
    x = torch.randn(batch, 60, n_features)
    y = (torch.rand(batch) < 0.5).float()
    for _ in range(steps):
        step(x, y)


def _train_fused(
    arch: Architecture, n_features: int, batch: int, steps: int, dtype: torch.dtype | None, k: int
) -> None:
    models = [PatchTST(arch, n_features).to(dtype) for _ in range(k)]
    fused = FusedPatchTST.stack(models, [0.1] * k, [0.0] * k)
    del models
    step = FusedStep(fused, FusedAdamW(fused, [1e-4] * k, [1.0] * k))
    x = torch.randn(k, batch, 60, n_features)
    y = (torch.rand(k, batch) < 0.5).float()
    for _ in range(steps):
        step(x, y, [1e-3] * k)


def _measure(
    d: int,
    layers: int,
    heads: int,
    ff: int,
    n_features: int,
    batch: int,
    dtype: torch.dtype | None,
    fused: int = 1,
    sites: str = "residual",
) -> int:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # the peak does not depend on threads; the wall time does
    _train(Architecture(16, 1, 2, 32), n_features, 8, 2, dtype)  # lazy init of kernels, pools
    before = psutil.Process().memory_info().rss
    _train(Architecture(d, layers, heads, ff), n_features, batch, 2, dtype, fused, sites)  # AdamW
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before


def main() -> None:
    for group in sys.argv[1:]:
        fields = group.split(",")
        values = [int(v) for v in fields[:6]]
        dtype = torch.bfloat16 if "bf16" in fields[6:] else None
        fused = next((int(f[1:]) for f in fields[6:] if f.startswith("k")), 1)
        sites = "reference" if "ref" in fields[6:] else "residual"
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            peak = _measure(*values, dtype=dtype, fused=fused, sites=sites)
            os.write(write, str(peak).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            result = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not result:
            raise SystemExit(f"child for {group} failed with status {status}")
        print(result)


if __name__ == "__main__":
    main()
