"""Learning-rate schedule: linear warmup, then cosine decay to a floor.

Optimizer step s (0-based) runs at learning_rate * lr_factor(s):
- s < warmup: (s + 1) / warmup, so the first step is already non-zero and step
  warmup-1 reaches the full rate;
- after: a cosine from 1 down to `min_ratio` at the last step of the run, flat after.

The reference pipeline sampled warmup steps but never applied them (original-pipeline.md
item 4); here the schedule is attached to the optimizer the trainer steps, and a test
reads the rate back from the optimizer.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

MIN_RATIO = 0.0


def lr_factor(
    step: int, warmup_steps: int, total_steps: int, min_ratio: float = MIN_RATIO
) -> float:
    """The multiplier of the base learning rate at optimizer step `step`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_ratio: float = MIN_RATIO,
) -> LambdaLR:
    """A scheduler to step once per optimizer step (not per micro-batch)."""
    if warmup_steps < 0 or total_steps < 1:
        raise ValueError(f"warmup_steps {warmup_steps} / total_steps {total_steps} out of range")
    return LambdaLR(optimizer, lambda step: lr_factor(step, warmup_steps, total_steps, min_ratio))
