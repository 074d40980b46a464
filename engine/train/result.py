"""What a trial's training reports: per-epoch progress and the final result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class EpochReport:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    elapsed_s: float
    learning_rate: float


@dataclass
class TrainResult:
    """value is the best validation BCE (the trial's objective); the weights of that epoch
    are the ones evaluated."""

    value: float
    best_epoch: int
    epochs_run: int
    curve: list[EpochReport]
    val_metrics: dict[str, float]
    test_metrics: dict[str, float] | None
    duration_s: float
    stopped_early: bool
    n_params: int
    device: str
    micro_batch: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrialStopped(Exception):
    """Raised by the trainer at an epoch boundary when `should_stop()` returns True."""


class TrialDoesNotFit(Exception):
    """Raised before training when even batch 1 exceeds the device's available memory."""
