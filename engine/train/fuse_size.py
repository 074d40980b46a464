"""How many trials to fuse (`fuse = "auto"`): the memory estimate, then a short timing.

K is chosen per (device, architecture class, batch, precision), once per process
(`architecture_class`):
1. the memory estimate gives the largest K <= cap whose fused step fits the device at the
   full batch (`engine.model.memory.max_fused_trials`);
2. a calibration times a few fused steps at K = 1, 2, 4, 8, ... up to that bound on
   random windows, and keeps the K with the lowest time per trial-step, stopping at the
   first doubling that gains less than `MIN_GAIN` (per trial-step): past that point a
   larger K only ties more trials to one architecture for nothing.
The figures (seconds per step at each K tried) are returned so the caller can store
them with the trial (`fuse_calibration` attribute).

A fused group never splits its batch into micro-batches; a trial that does not fit even
alone is left to the solo path, whose memory guard shrinks the micro-batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from engine.model.architecture import Architecture
from engine.model.fused import FusedPatchTST
from engine.model.memory import max_fused_trials
from engine.model.patchtst import PatchTST
from engine.train.device import split_precision
from engine.train.fused_step import FusedAdamW, FusedStep

MAX_AUTO = 8  # the largest K "auto" tries (a group shares one architecture)
MIN_GAIN = 0.10  # a doubling of K must cut the time per trial-step by 10% to be taken
CALIBRATION_STEPS = 3  # timed steps per K (the fastest counts), after a warm-up step


@dataclass(frozen=True)
class FuseChoice:
    k: int
    memory_bound: int  # the largest K the memory estimate allows (0: not even 1)
    step_s: dict[int, float]  # seconds per fused step at each K timed

    def to_dict(self) -> dict[str, object]:
        return {
            "k": self.k,
            "memory_bound": self.memory_bound,
            "step_s": {str(k): round(v, 5) for k, v in self.step_s.items()},
        }


_CHOSEN: dict[tuple[object, ...], FuseChoice] = {}


def choose_fuse(
    arch: Architecture,
    n_features: int,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
    *,
    cap: int = MAX_AUTO,
    context_len: int = 60,
    patch_len: int = 10,
    stride: int = 5,
    available: int | None = None,
) -> FuseChoice:
    """The K to fuse for this shape on this device (cached for the process)."""
    key: tuple[object, ...] = (str(device), dtype, batch_size, cap, n_features, context_len)
    key += (patch_len, stride)
    key += architecture_class(arch)
    if key in _CHOSEN:
        return _CHOSEN[key]
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
    )
    times: dict[int, float] = {}
    best = min(1, bound)
    if bound >= 2:
        shape = (context_len, patch_len, stride)
        k = 1
        while k <= bound:
            times[k] = time_fused_step(arch, n_features, batch_size, device, dtype, k, shape)
            if k > 1 and times[k] / k > (1 - MIN_GAIN) * times[best] / best:
                break
            best = k
            k *= 2
    choice = FuseChoice(best, bound, times)
    _CHOSEN[key] = choice
    return choice


def architecture_class(arch: Architecture) -> tuple[int, int]:
    """Architectures whose K is chosen once: the same d_model and a number of layers in
    the same power-of-two bracket (1, 2-3, 4-7, ...). Their steps differ in length, not in
    how they use the device, and a calibration costs about a dozen steps."""
    return arch.d_model, arch.n_layers.bit_length()


def time_fused_step(
    arch: Architecture,
    n_features: int,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
    k: int,
    shape: tuple[int, int, int] = (60, 10, 5),
    steps: int = CALIBRATION_STEPS,
) -> float:
    """Seconds of a fused step of K trials on random windows: the fastest of `steps`
    after a warm-up (other load on the machine only ever adds time)."""
    context_len, patch_len, stride = shape
    model_dtype, autocast = split_precision(device, dtype)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        models = [
            PatchTST(arch, n_features, context_len, patch_len, stride, dropout=0.1).to(
                device, model_dtype
            )
            for _ in range(k)
        ]
        fused = FusedPatchTST.stack(models, [0.1] * k, [0.0] * k)
        del models
        step = FusedStep(fused, FusedAdamW(fused, [1e-4] * k, [1.0] * k), autocast_dtype=autocast)
        x = torch.randn(k, batch_size, context_len, n_features, device=device)
        y = (torch.rand(k, batch_size, device=device) < 0.5).float()
        rates = [1e-4] * k
        step(x, y, rates)  # warm-up: allocations, kernel selection
        times = []
        for _ in range(steps):
            _sync(device)
            start = time.perf_counter()
            step(x, y, rates)
            _sync(device)
            times.append(time.perf_counter() - start)
    return min(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
