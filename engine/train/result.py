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
    val_auc: float = float("nan")  # validation ROC-AUC (NaN with one class only)
    objective: float = float("nan")  # what selection minimises: val_loss or 1 - val_auc


@dataclass
class TrainResult:
    """value is the best epoch's objective (RunOptions.objective: validation BCE, or 1 -
    validation ROC-AUC), lower is better; the weights of that epoch are the ones
    evaluated, and val_metrics holds both BCE and ROC-AUC whichever selected it."""

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
