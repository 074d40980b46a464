"""How many trials to fuse (`fuse = "auto"`): the memory estimate, then a short timing.

K is chosen per (machine, device, architecture class, batch, precision), once: the answer
is cached with the run choices of `engine.train.autotune` (`run_choice_cache`, the
user's cache directory), so the two workers of a campaign, and later campaigns on this
machine, reuse it instead of timing again (`hpotui hw` lists it). How it is chosen:
1. the memory estimate gives the largest K <= cap whose fused step fits the device at the
   full batch (`engine.train.memory.max_fused_trials`);
2. a calibration times a few steps of the one-trial path (`TrainStep`, what `fuse = 1`
   runs) and of fused groups at K = 2, 4, 8, ... up to that bound, on random windows,
   and keeps the K with the lowest time per trial-step, stopping at the first doubling
   that gains less than `MIN_GAIN`: past that point a larger K only ties more trials to
   one architecture for nothing. K = 1 (the one-trial path) wins unless a group beats it
   by `MIN_GAIN`; a K whose timing would take over `CALIBRATION_BUDGET_S` is not tried
   (a step that long is compute-bound: fusing saves per-operation overhead only). On a CPU the steps are timed in CPU seconds of this process, not wall
   time: other work on the machine then slows neither side (on 2 loaded cores wall-time
   steps had picked a K that trained 0.72x as fast); on a GPU in synchronised wall time.
The figures (seconds per step at each K tried, K = 1 being the one-trial path) are
returned so the caller can store them with the trial (`fuse_calibration` attribute).

A fused group never splits its batch into micro-batches; a trial that does not fit even
alone is left to the solo path, whose memory guard shrinks the micro-batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from engine.model.architecture import Architecture
from engine.model.dropout_sites import DEFAULT as DEFAULT_SITES
from engine.model.dropout_sites import DropoutSites
from engine.model.fused import FusedPatchTST
from engine.model.patchtst import PatchTST
from engine.train import run_choice_cache as cache
from engine.train.autotune import device_name
from engine.train.device import split_precision
from engine.train.fused_step import FusedAdamW, FusedStep
from engine.train.memory import max_fused_trials
from engine.train.step import TrainStep, build_optimizer

MAX_AUTO = 8  # the largest K "auto" tries on a CPU or MPS (a group shares one architecture)
MAX_AUTO_CUDA = 16  # a big GPU runs 16 small trials' kernels side by side before they fill it
MIN_GAIN = 0.10  # a doubling of K must cut the time per trial-step by 10% to be taken
CALIBRATION_STEPS = 3  # timed steps per K at least (the fastest counts), after the warm-up
CALIBRATION_MORE_S = 0.3  # cheap steps are timed up to 10 times while under this total
WARMUP_STEPS = {"cpu": 2, "cuda": 4}  # untimed steps: allocator, kernels, a graph's capture
CALIBRATION_BUDGET_S = 8.0  # a K whose timing would take longer is not tried


@dataclass(frozen=True)
class FuseChoice:
    k: int
    memory_bound: int  # the largest K the memory estimate allows (0: not even 1)
    step_s: dict[int, float]  # seconds per step at each K timed (1: the one-trial path)
    source: str = "measured"  # or "cached": timed before on this machine
    cost_s: float = 0.0  # wall seconds the timing took

    def to_dict(self) -> dict[str, object]:
        return {
            "k": self.k,
            "memory_bound": self.memory_bound,
            "step_s": {str(k): round(v, 5) for k, v in self.step_s.items()},
            "source": self.source,
            "cost_s": round(self.cost_s, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FuseChoice:
        return cls(
            int(data["k"]),
            int(data["memory_bound"]),
            {int(k): float(v) for k, v in dict(data["step_s"]).items()},
            str(data.get("source", "measured")),
            float(data.get("cost_s", 0.0)),
        )


_CHOSEN: dict[str, FuseChoice] = {}  # this process's answers, by cache key


def choose_fuse(
    arch: Architecture,
    n_features: int,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
    *,
    cap: int | None = None,
    context_len: int = 60,
    patch_len: int = 10,
    stride: int = 5,
    available: int | None = None,
    dropout_sites: DropoutSites = DEFAULT_SITES,
) -> FuseChoice:
    """The K to fuse for this shape on this device (measured once per machine and class,
    module docstring), never above what the memory estimate allows now; `cap` defaults
    to `max_auto(device)`. `dropout_sites` (the experiment's) changes both the memory
    (a mask per site is kept for the backward pass) and the step time."""
    cap = max_auto(device) if cap is None else cap
    d_model, layers = architecture_class(arch)
    key = " | ".join(
        (
            cache.machine(),
            device_name(device),
            f"d{d_model} L<{2**layers}",
            f"batch {batch_size}",
            f"{'fp32' if dtype is None else str(dtype).split('.')[-1]}",
            f"cap {cap}",
            f"{n_features} features {context_len}/{patch_len}/{stride}",
            *([] if dropout_sites == DEFAULT_SITES else [f"dropout {'+'.join(dropout_sites)}"]),
        )
    )
    # memory is estimated now, also for a cached choice: free memory may have shrunk
    bound = max_fused_trials(
        arch,
        n_features,
        batch_size,
        device,
        cap=cap,
        available=available,
        dtype=dtype or torch.float32,
        context_len=context_len,
        patch_len=patch_len,
        stride=stride,
        dropout_sites=dropout_sites,
    )
    choice = _CHOSEN.get(key)
    if choice is None:
        path = cache.cache_path()
        with cache.CacheLock(path):  # the other worker waits, then reads what this one timed
            stored = cache.read_cache(path).get(cache.FUSE_PREFIX + key)
            if stored is not None:
                choice = replace(FuseChoice.from_dict(stored), source="cached")
            else:
                shape = (context_len, patch_len, stride)
                choice = _measure(
                    arch, n_features, batch_size, device, dtype, bound, shape, dropout_sites
                )
                cache.write_entry(path, cache.FUSE_PREFIX + key, choice.to_dict())
        _CHOSEN[key] = choice
    if choice.k > bound:
        return replace(choice, k=bound, memory_bound=bound)
    return choice


def _measure(
    arch: Architecture,
    n_features: int,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
    bound: int,
    shape: tuple[int, int, int],
    sites: DropoutSites = DEFAULT_SITES,
) -> FuseChoice:
    """The timing of the module docstring, up to the memory bound."""
    started = time.perf_counter()
    times: dict[int, float] = {}
    best = min(1, bound)
    if bound >= 2:
        times[1] = time_solo_step(arch, n_features, batch_size, device, dtype, shape, sites=sites)
        k = 2
        warmup = WARMUP_STEPS.get(device.type, 2)
        while k <= bound and (warmup + CALIBRATION_STEPS) * k * times[1] <= CALIBRATION_BUDGET_S:
            times[k] = time_fused_step(
                arch, n_features, batch_size, device, dtype, k, shape, sites=sites
            )
            if times[k] / k > (1 - MIN_GAIN) * times[best] / best:
                break
            best = k
            k *= 2
    return FuseChoice(best, bound, times, cost_s=time.perf_counter() - started)


def max_auto(device: torch.device) -> int:
    """The largest K "auto" tries on `device`: `MAX_AUTO_CUDA` on CUDA, else `MAX_AUTO`
    (MPS runs the same code path as CUDA, without CUDA graphs, on a smaller GPU)."""
    return MAX_AUTO_CUDA if device.type == "cuda" else MAX_AUTO


def architecture_class(arch: Architecture) -> tuple[int, int]:
    """Architectures whose K is chosen once: the same d_model and a number of layers in
    the same power-of-two bracket (1, 2-3, 4-7, ...). Their steps differ in length, not in
    how they use the device, and a calibration costs about a dozen steps."""
    return arch.d_model, arch.n_layers.bit_length()


def time_solo_step(
    arch: Architecture,
    n_features: int,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
    shape: tuple[int, int, int] = (60, 10, 5),
    steps: int = CALIBRATION_STEPS,
    sites: DropoutSites = DEFAULT_SITES,
) -> float:
    """Seconds of one step of the one-trial path (`fuse = 1`), timed as `time_fused_step`."""
    context_len, patch_len, stride = shape
    model_dtype, autocast = split_precision(device, dtype)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = PatchTST(
            arch, n_features, context_len, patch_len, stride, dropout=0.1, dropout_sites=sites
        )
        model = model.to(device, model_dtype)
        optimizer = build_optimizer(model, 1e-4, 1e-4, capturable=device.type == "cuda")
        step = TrainStep(model, optimizer, autocast_dtype=autocast, cuda_graph=True)
        x = torch.randn(batch_size, context_len, n_features, device=device)
        y = (torch.rand(batch_size, device=device) < 0.5).float()
        return _fastest(lambda: step(x, y), device, steps)


def time_fused_step(
    arch: Architecture,
    n_features: int,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
    k: int,
    shape: tuple[int, int, int] = (60, 10, 5),
    steps: int = CALIBRATION_STEPS,
    sites: DropoutSites = DEFAULT_SITES,
) -> float:
    """Seconds of a fused step of K trials on random windows: the fastest of `steps`
    after a warm-up (other load on the machine only ever adds time)."""
    context_len, patch_len, stride = shape
    model_dtype, autocast = split_precision(device, dtype)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        models = [
            PatchTST(arch, n_features, context_len, patch_len, stride, 0.1, dropout_sites=sites).to(
                device, model_dtype
            )
            for _ in range(k)
        ]
        fused = FusedPatchTST.stack(models, [0.1] * k, [0.0] * k)
        del models
        optimizer = FusedAdamW(fused, [1e-4] * k, [1.0] * k)
        step = FusedStep(fused, optimizer, autocast_dtype=autocast, cuda_graph=True)
        x = torch.randn(k, batch_size, context_len, n_features, device=device)
        y = (torch.rand(k, batch_size, device=device) < 0.5).float()
        rates = [1e-4] * k
        return _fastest(lambda: step(x, y, rates), device, steps)


def _fastest(step: Callable[[], object], device: torch.device, steps: int) -> float:
    """The fastest of `steps` calls after warm-up calls (allocations, kernel selection,
    a CUDA graph's capture): in CPU seconds of this process on a CPU (other load on the
    machine does not count), in synchronised wall seconds on a GPU."""
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    for _ in range(WARMUP_STEPS.get(device.type, 2)):
        step()
    times: list[float] = []
    while len(times) < steps or (len(times) < 10 and sum(times) < CALIBRATION_MORE_S):
        _sync(device)
        start = clock()
        step()
        _sync(device)
        times.append(clock() - start)
    return min(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
