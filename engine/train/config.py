"""What one trial is trained with.

`TrainParams` holds every knob the search may sample: a search-space key in a campaign
config must be one of its field names, and every field must change training (each has a
test in tests/train). `RunOptions` holds how and where to run, never sampled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from engine.model.dropout_sites import DEFAULT as DEFAULT_SITES

Precision = Literal["auto", "fp32", "bf16"]
Objective = Literal["val_bce", "val_auc"]


@dataclass(frozen=True)
class TrainParams:
    learning_rate: float = 3e-4
    epochs: int = 50
    batch_size: int = 256
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    dropout: float = 0.1
    head_dropout: float = 0.0
    grad_clip: float = 1.0
    patience: int = 10
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainParams:
        known = set(cls.names())
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class RunOptions:
    """Where and how a trial runs. `device="auto"` picks MPS, then CUDA, then CPU."""

    device: str = "auto"
    precision: Precision = "auto"
    threads: int | None = None
    evaluate_test: bool = False
    memory_limit_bytes: int | None = None
    # which validation figure picks the best epoch (and is the trial's value): BCE, or
    # ROC-AUC minimised as 1 - AUC (docs/model.md says why BCE is the default)
    objective: Objective = "val_bce"
    # where the model applies `dropout` (engine.model.dropout_sites; an experiment's key,
    # fixed for a study like the objective, so not a TrainParams field)
    dropout_sites: tuple[str, ...] = DEFAULT_SITES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
