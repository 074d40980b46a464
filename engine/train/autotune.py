"""Precision, attention kernel and thread count chosen by timing steps, per machine.

What runs fastest is a property of the machine, not of a CPU flag: on a Zen4 CPU
without AMX a bf16 model ran the wide architectures 1.85-2.14x faster than fp32, and
the math attention kernel beat the fused one on deep narrow models, the opposite of an
AMX CPU. So the first time a worker trains an *architecture class* on a device,
`choose_run` times a few optimizer steps of each candidate and keeps the fastest:

1. threads (CPU): the worker's share, half and a quarter of it, in fp32 with "sdpa"
   (first: on a loaded machine a thread count too high makes every other figure slow
   and noisy);
2. precision: fp32, bf16 (with `precision = "auto"`; an explicit one is not timed),
   at the winning threads. bf16 is a bf16 model with fp32 master weights in the
   optimizer, as always on CPU;
3. attention: "sdpa" (PyTorch's fused kernel) and "math", at the winners so far.

A stage's first candidate is the default (fp32, sdpa, the whole share); another one
wins only when its best step is at least `MARGIN` faster, so noise does not flip it.
Candidates run in interleaved rounds (load hits each alike), up to `ROUNDS`, fewer once
a stage's timed steps took `STAGE_BUDGET_S`; a candidate `LOSER` times slower than the
best is not timed again; a candidate's figure is its best round.

The class (`arch_class`): d_model and n_layers rounded up to powers of two, n_heads,
patches per window, the batch rounded up to a power of two; the cache key adds the
dropout sites, the precision setting, the thread share, the device and the machine (CPU
model, torch version). The cache (`engine.train.run_choice_cache`) is one JSON file in
the user's cache directory, not in a campaign's outputs: the answer belongs to the
machine, so every campaign and `hpotui train` on it reuse one calibration, and outputs
on shared storage are read by other machines. `hpotui hw` lists it.

CUDA keeps the rules (bf16 where supported, PyTorch's kernel choice): its trials run
captured CUDA graphs, and eager steps timed here would misjudge them. `HPOTUI_AUTOTUNE=off`
turns measuring off everywhere (the rules: bf16 only on AMX CPUs, sdpa, the whole share).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from engine.model.architecture import Architecture
from engine.model.dropout_sites import describe_sites
from engine.model.params import n_patches
from engine.model.patchtst import set_attention_backend
from engine.train import run_choice_cache as cache
from engine.train.config import RunOptions
from engine.train.device import set_threads, training_dtype
from engine.train.run_choice_cache import RunChoice

MARGIN = 1.10
LOSER = 2.0  # a candidate this much slower than the best after a round is not re-timed
ROUNDS = 3
STAGE_BUDGET_S = 0.25
SWITCH_ENV = "HPOTUI_AUTOTUNE"
_INITIAL_THREADS = torch.get_num_threads()  # torch's default share, before any trial set one


@dataclass(frozen=True)
class Candidate:
    precision: str  # "fp32" | "bf16"
    attention: str  # "sdpa" | "math"
    threads: int

    @property
    def label(self) -> str:
        return f"{self.precision}/{self.attention}/{self.threads}t"


# ---------------------------------------------------------------------- the class


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def arch_class(arch: Architecture, batch: int, patches: int) -> str:
    """e.g. "d64 L64 h2 n11 b256" for d64-L48-h2 with 11 patches at batch 256."""
    return (
        f"d{_pow2(arch.d_model)} L{_pow2(arch.n_layers)} h{arch.n_heads} n{patches} b{_pow2(batch)}"
    )


def device_name(device: torch.device) -> str:
    """The device as a cache key names it: the GPU's model on CUDA, else its type."""
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return device.type


# ---------------------------------------------------------------------- choosing


Timer = Callable[[Candidate], float]


def calibrate(
    precisions: list[str], threads: list[int], timer: Timer
) -> tuple[Candidate, dict[str, dict[str, float]]]:
    """The winner of the three stages (module docstring) and, per stage, the best
    seconds per step of each candidate it timed. `timer(candidate)` runs and times one
    step."""
    figures: dict[str, dict[str, float]] = {}
    best = Candidate(precisions[0], "sdpa", threads[0])
    best = _stage([replace(best, threads=t) for t in threads], timer, figures, "threads")
    best = _stage([replace(best, precision=p) for p in precisions], timer, figures, "precision")
    best = _stage([best, replace(best, attention="math")], timer, figures, "attention")
    return best, figures


def _stage(
    candidates: list[Candidate],
    timer: Timer,
    figures: dict[str, dict[str, float]],
    stage: str,
) -> Candidate:
    """Time `candidates` in rounds; the winner (the first one, the default, unless
    another is `MARGIN` faster). Each stage re-times the incumbent, so the candidates it
    compares ran under the same load; `figures[stage]` keeps what it compared."""
    default = candidates[0]
    if len(candidates) == 1:
        return default
    times: dict[Candidate, float] = {}
    spent = 0.0
    for _ in range(ROUNDS):
        for c in candidates:
            if c in times and times[c] > LOSER * min(times.values()):
                continue  # lost by far already (or cannot run): not timed again
            try:
                seconds = timer(c)
            except RuntimeError:  # this device cannot run it (bf16 on an old GPU, say)
                if c == default:
                    raise
                seconds = float("inf")
            times[c] = min(times.get(c, float("inf")), seconds)
            spent += seconds if seconds != float("inf") else 0.0
        if spent >= STAGE_BUDGET_S:
            break
    # one that cannot run has no figure
    figures[stage] = {c.label: s for c, s in times.items() if s != float("inf")}
    fastest = min(candidates, key=lambda c: times[c])
    return fastest if times[default] >= MARGIN * times[fastest] else default


def thread_candidates(share: int) -> list[int]:
    """The share, half and a quarter of it (at least 1), largest first."""
    return list(dict.fromkeys(max(1, share // d) for d in (1, 2, 4)))


def choose_run(
    arch: Architecture,
    n_features: int,
    batch: int,
    device: torch.device,
    options: RunOptions,
    *,
    context_len: int = 60,
    patch_len: int = 10,
    stride: int = 5,
    timer: Timer | None = None,
) -> RunChoice:
    """The run choice for one trial (module docstring): from the cache, by timing, or by
    the rules. Applies nothing; `apply_run_choice` sets threads and attention."""
    share = options.threads or _INITIAL_THREADS
    rule_dtype = training_dtype(device, options.precision)  # also validates the setting
    rule = RunChoice("fp32" if rule_dtype is None else "bf16", "sdpa", options.threads, "rule")
    if device.type == "cuda" or os.environ.get(SWITCH_ENV, "").lower() in ("off", "0", "no"):
        return rule
    precisions = ["fp32", "bf16"] if options.precision == "auto" else [rule.precision]
    threads = thread_candidates(share) if device.type == "cpu" else [share]
    patches = n_patches(context_len, patch_len, stride)
    key = " | ".join(
        (
            cache.machine(),
            device_name(device),
            arch_class(arch, batch, patches),
            f"dropout {describe_sites(options.dropout_sites)}",
            f"precision {options.precision}",
            f"share {share}t",
        )
    )
    path = cache.cache_path()
    with cache.CacheLock(path):  # a second worker waits, then reads what the first measured
        cached = cache.read_cache(path).get(key)
        if cached is not None:
            return replace(RunChoice.from_dict(cached), source="cached")
        started = time.perf_counter()
        if timer is None:
            from engine.train.step_timer import StepTimer

            shape = {"context_len": context_len, "patch_len": patch_len, "stride": stride}
            with StepTimer(arch, n_features, batch, device, options, **shape) as real:
                winner, figures = calibrate(precisions, threads, real)
        else:
            winner, figures = calibrate(precisions, threads, timer)
        choice = RunChoice(
            winner.precision,
            winner.attention,
            winner.threads if device.type == "cpu" else options.threads,
            "measured",
            key=key,
            measured_on=arch.label,
            figures={
                stage: {label: round(s * 1e3, 3) for label, s in timed.items()}
                for stage, timed in figures.items()
            },
            cost_s=round(time.perf_counter() - started, 3),
        )
        cache.write_entry(path, key, choice)
    return choice


def apply_run_choice(
    arch: Architecture,
    n_features: int,
    batch: int,
    device: torch.device,
    options: RunOptions,
    **shape: int,
) -> RunChoice:
    """`choose_run`, then set this process's threads and attention kernel to it. The
    torch RNG state is kept: a trial seeded afterwards draws what it would have without
    the calibration."""
    set_threads(options.threads)
    rng = torch.random.get_rng_state()
    try:
        choice = choose_run(arch, n_features, batch, device, options, **shape)  # type: ignore[arg-type]
    finally:
        torch.random.set_rng_state(rng)
    set_threads(choice.threads)
    set_attention_backend(choice.attention)
    return choice
