"""Where a CUDA training step's time goes: kernels per step and their GPU time.

    python bench/cuda_kernels.py [--arch 64,48,2,256] [--batch 256] [--fp32]
    python bench/cuda_kernels.py --variants [--arch ...]   graph step per variant

Profiles one eager `TrainStep` (after warm-up) with torch.profiler and prints the number
of kernels launched, their summed GPU time and the kernels that take the most of it;
then times the same step eager and replayed as a CUDA graph. A graph replay removes
the launch gaps, so the summed kernel time is about the floor of the captured step:
for small deep models, fewer or shorter kernels is the only way further.

`--variants` times the captured step under each attention backend PyTorch offers, with
the math backend allowed to reduce in bf16, and with the bias added after the matmul
(the CPU way) instead of in cuBLAS's epilogue, so a choice of implementation rests on a
measurement of this GPU (patchtst._sdpa and _linear quote the ones made so far).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine.model.patchtst as patchtst
from engine.model.architecture import Architecture
from engine.model.patchtst import PatchTST
from engine.train.step import WARMUP_GRAPH_STEPS, TrainStep, build_optimizer

N_FEATURES = 25


def make_step(arch: Architecture, dtype: torch.dtype | None, graph: bool) -> TrainStep:
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = PatchTST(arch, N_FEATURES)
    optimizer = build_optimizer(model, 3e-4, 1e-4, capturable=graph)
    return TrainStep(model, optimizer, grad_clip=1.0, autocast_dtype=dtype, cuda_graph=graph)


def timed(step: TrainStep, x: torch.Tensor, y: torch.Tensor, n: int) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        step(x, y)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


@dataclass(frozen=True)
class Variant:
    backend: SDPBackend | None = None  # None: PyTorch's own choice
    bf16_math: bool = False  # let the math attention reduce in bf16 (default: fp32 upcast)
    separate_bias: bool = False  # the CPU way: matmul, then an in-place bias add

    @property
    def name(self) -> str:
        words = [self.backend.name if self.backend else "default"]
        words += ["+bf16-math"] * self.bf16_math + ["+separate-bias"] * self.separate_bias
        return " ".join(words)


@contextlib.contextmanager
def applied(v: Variant) -> Iterator[None]:
    linear: Callable[[nn.Linear, torch.Tensor], torch.Tensor] = patchtst._linear
    reduction = torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed()  # type: ignore[no-untyped-call]
    if v.separate_bias:
        patchtst._linear = lambda layer, x: F.linear(x, layer.weight).add_(layer.bias)  # type: ignore[assignment]
    torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(v.bf16_math)
    try:
        with sdpa_kernel([v.backend]) if v.backend is not None else contextlib.nullcontext():
            yield
    finally:
        patchtst._linear = linear  # type: ignore[assignment]
        torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(reduction)


VARIANTS = [
    Variant(),
    Variant(SDPBackend.MATH),
    Variant(SDPBackend.MATH, bf16_math=True),
    Variant(SDPBackend.EFFICIENT_ATTENTION),
    Variant(SDPBackend.FLASH_ATTENTION),
    Variant(SDPBackend.CUDNN_ATTENTION),
    Variant(separate_bias=True),
]


def time_variants(arch: Architecture, batch: int, dtype: torch.dtype | None) -> None:
    x = torch.randn(batch, 60, N_FEATURES, device="cuda")
    y = (x[:, -1, 0] > 0).float()
    for v in VARIANTS:
        try:
            with applied(v):
                step = make_step(arch, dtype, graph=True)
                timed(step, x, y, WARMUP_GRAPH_STEPS + 1)
                seconds = min(timed(step, x, y, 8) for _ in range(2))
            print(
                f"  {v.name:<30} {seconds * 1e3:8.2f} ms/step {batch / seconds:>10,.0f} samples/s"
            )
        except Exception as error:  # a backend that cannot run this shape
            print(f"  {v.name:<30} fails: {str(error).splitlines()[0][:80]}")
        step = None  # type: ignore[assignment]
        torch.cuda.empty_cache()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="64,48,2,256")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--variants", action="store_true", help="time implementation variants")
    args = parser.parse_args()
    arch = Architecture(*(int(v) for v in args.arch.split(",")))
    dtype = None if args.fp32 else torch.bfloat16
    if args.variants:
        print(f"{arch.label} batch {args.batch}: captured step per variant")
        time_variants(arch, args.batch, dtype)
        return 0
    x = torch.randn(args.batch, 60, N_FEATURES, device="cuda")
    y = (x[:, -1, 0] > 0).float()

    eager = make_step(arch, dtype, graph=False)
    for _ in range(3):
        eager(x, y)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        eager(x, y)
        torch.cuda.synchronize()
    kernels = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    launches = sum(e.count for e in kernels)
    total_us = sum(e.self_device_time_total for e in kernels)
    print(f"{arch.label} batch {args.batch} {'fp32' if dtype is None else 'bf16'}")
    print(f"eager step: {launches} kernels, {total_us / 1e3:.2f} ms of GPU time")
    for e in sorted(kernels, key=lambda e: -e.self_device_time_total)[: args.top]:
        share = e.self_device_time_total / total_us
        mean = e.self_device_time_total / e.count
        print(f"  {share:6.1%} {e.count:5d} x {mean:6.1f} us  {e.key[:90]}")

    eager_s = timed(eager, x, y, 20)
    del eager
    graph = make_step(arch, dtype, graph=True)
    timed(graph, x, y, WARMUP_GRAPH_STEPS + 1)  # warm-up and capture
    graph_s = timed(graph, x, y, 50)
    print(
        f"eager {eager_s * 1e3:.2f} ms/step ({args.batch / eager_s:,.0f} samples/s), "
        f"graph {graph_s * 1e3:.2f} ms/step ({args.batch / graph_s:,.0f} samples/s), "
        f"kernel floor {total_us / 1e3:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
