"""Times one optimizer step of a run candidate: the real timer of `engine.train.autotune`.

One model per precision (built on first use, as the trainer builds it: a bf16 model
with fp32 masters on CPU, autocast elsewhere), the trainer's `TrainStep` on random
windows of the trial's shape, the candidate's attention kernel and threads set before
the step. The first step of each precision and kernel is a warm-up (kernel choice, page
faults, the thread pool) and is not timed; a thread count alone needs none (the share,
the largest, runs first). The batch is the largest the memory guard lets an fp32 step take, so timing
never needs more memory than the trial will.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from engine.model.architecture import Architecture
from engine.model.patchtst import PatchTST, attention_backend, set_attention_backend
from engine.train.config import RunOptions
from engine.train.device import split_precision
from engine.train.memory import plan_micro_batch
from engine.train.step import TrainStep, build_optimizer

if TYPE_CHECKING:
    from engine.train.autotune import Candidate


class StepTimer:
    """`timer(candidate)` -> seconds of one step. Use as a context manager: on exit it
    restores the process's threads and attention kernel and frees the models."""

    def __init__(
        self,
        arch: Architecture,
        n_features: int,
        batch: int,
        device: torch.device,
        options: RunOptions,
        *,
        context_len: int = 60,
        patch_len: int = 10,
        stride: int = 5,
    ) -> None:
        self.arch, self.n_features, self.device, self.options = arch, n_features, device, options
        self.shape = {"context_len": context_len, "patch_len": patch_len, "stride": stride}
        self.batch = plan_micro_batch(
            arch,
            n_features,
            batch,
            device,
            available=options.memory_limit_bytes,
            dtype=torch.float32,
            dropout_sites=options.dropout_sites,
            **self.shape,
        )
        self.x = torch.randn(self.batch, context_len, n_features, device=device)
        self.y = (torch.rand(self.batch, device=device) < 0.5).float()
        self._steps: dict[str, TrainStep] = {}
        self._warm: set[tuple[str, str]] = set()  # (precision, attention) run once

    def __enter__(self) -> StepTimer:
        self._restore = (torch.get_num_threads(), attention_backend())
        return self

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._restore[0])
        set_attention_backend(self._restore[1])
        self._steps.clear()

    def __call__(self, candidate: Candidate) -> float:
        step = self._step(candidate.precision)
        set_attention_backend(candidate.attention)
        if self.device.type == "cpu":
            torch.set_num_threads(candidate.threads)
        if (candidate.precision, candidate.attention) not in self._warm:
            self._warm.add((candidate.precision, candidate.attention))
            self._run(step)
        started = time.perf_counter()
        self._run(step)
        return time.perf_counter() - started

    def _run(self, step: TrainStep) -> None:
        step(self.x, self.y)
        _sync(self.device)

    def _step(self, precision: str) -> TrainStep:
        if precision not in self._steps:
            dtype = torch.bfloat16 if precision == "bf16" else None
            model_dtype, autocast = split_precision(self.device, dtype)
            model = PatchTST(
                self.arch,
                self.n_features,
                dropout=0.1,
                dropout_sites=self.options.dropout_sites,
                **self.shape,
            ).to(self.device, model_dtype)
            optimizer = build_optimizer(model, 3e-4, 1e-4)
            self._steps[precision] = TrainStep(
                model, optimizer, grad_clip=1.0, autocast_dtype=autocast
            )
        return self._steps[precision]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
