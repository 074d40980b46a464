"""Search-space sanity: ranges that cannot change what a trial does, found before compute.

A search that samples a knob whose whole range makes no difference wastes trials and
reads as "this knob does not matter". Checked with the experiment's own numbers (training
windows, batch sizes, epochs, learning rates), each a warning that quotes them:

- warmup: the largest warmup_steps at or beyond the fewest optimizer steps a trial can
  run (fewest epochs at the largest batch): that trial's learning rate never peaks
  (configs/phase6a.toml sampled up to 500 warmup steps where a trial could have 300).
- weight decay: AdamW's decoupled decay multiplies the weights by (1 - lr * wd) each
  step; over the longest trial at the largest learning rate the largest decay shrinks
  them by 1 - exp(-wd * lr * sum of the schedule's factors). Below DECAY_FLOOR (0.1%) the
  range is noise (the demo's 1e-5 .. 1e-3 changed validation loss by <= 1.7e-6).
- batch sizes: two or more batch sizes at or above the training windows train as the
  same single full batch.
- pruner: n_warmup_steps at or beyond the most epochs a trial runs: it never prunes.
"""

from __future__ import annotations

import math
from typing import Any

from engine.campaign.model import ExperimentConfig
from engine.train.config import TrainParams
from engine.train.schedule import lr_factor

DECAY_FLOOR = 0.001  # weights shrunk by less than 0.1% over a whole trial: no effect


def values_of(exp: ExperimentConfig, name: str) -> tuple[Any, ...]:
    """The values a TrainParams field can take in `exp`: the choices or (low, high) of its
    range when searched, else its fixed or default value."""
    for spec in exp.search_space:
        if spec.name == name:
            if spec.kind == "categorical":
                return tuple(spec.choices)
            return (spec.low, spec.high)
    return (exp.fixed_params.get(name, getattr(TrainParams(), name)),)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """As the trainer counts them: full batches of min(batch_size, n_train) windows."""
    return n_train // max(1, min(int(batch_size), n_train))


def schedule_area(warmup: int, total: int) -> float:
    """Sum over a run's steps of the learning-rate factor (warmup, then cosine)."""
    return sum(lr_factor(step, warmup, total) for step in range(total))


def dead_ranges(exp: ExperimentConfig, n_train: int) -> list[str]:
    """Warnings, with the numbers, for knobs whose range cannot matter in `exp`."""
    if n_train < 1:
        return []
    batches = [int(b) for b in values_of(exp, "batch_size")]
    epochs = [int(e) for e in values_of(exp, "epochs")]
    warmups = [int(w) for w in values_of(exp, "warmup_steps")]
    rates = [float(r) for r in values_of(exp, "learning_rate")]
    decays = [float(d) for d in values_of(exp, "weight_decay")]
    fewest_per_epoch = steps_per_epoch(n_train, max(batches))
    fewest = min(epochs) * fewest_per_epoch
    most = max(epochs) * steps_per_epoch(n_train, min(batches))
    out = []
    if max(warmups) > 0 and max(warmups) >= fewest:
        out.append(
            f"warmup_steps: up to {max(warmups)} warmup steps, but a trial can run as few as "
            f"{fewest} optimizer steps ({min(epochs)} epochs x {fewest_per_epoch} steps of batch "
            f"{max(batches)} on {n_train} training windows): its learning rate never peaks; "
            f"keep warmup below {fewest} (e.g. at most {max(1, fewest // 5)}, a fifth)"
        )
    wd, lr = max(decays), max(rates)
    area = schedule_area(min(min(warmups), most), most)
    shrink = 1.0 - math.exp(-wd * lr * area)
    if len(set(decays)) > 1 and shrink < DECAY_FLOOR:
        needed = -math.log(1 - 10 * DECAY_FLOOR) / (lr * area)  # shrinks by 1%
        out.append(
            f"weight_decay: the largest decay {wd:g} at learning rate {lr:g} over the longest "
            f"trial ({most} steps) shrinks weights by {shrink:.4%}, under "
            f"{DECAY_FLOOR:.1%}: the range changes nothing; a decay of {needed:.2g} would "
            "shrink them by 1%"
        )
    full = sorted(b for b in set(batches) if b >= n_train)
    if len(full) > 1:
        out.append(
            f"batch_size: {', '.join(map(str, full))} are all at or above the {n_train} "
            "training windows, so they train alike (one full batch per epoch)"
        )
    if exp.pruner.kind != "none" and exp.pruner.n_warmup_steps >= max(epochs):
        out.append(
            f"pruner.n_warmup_steps {exp.pruner.n_warmup_steps} >= the most epochs a trial "
            f"runs ({max(epochs)}): the pruner never prunes"
        )
    return out
