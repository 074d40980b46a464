"""One trial as the dashboard shows it, from live events or a stored record."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from engine.protocol import TrialRecord


@dataclass
class Trial:
    """One trial of one experiment, running or finished."""

    experiment: str
    number: int
    state: str = "running"  # "running" or a protocol TrialState
    value: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    architecture: dict[str, int] = field(default_factory=dict)
    n_params: int = 0
    worker: str = ""
    host: str = ""
    forced_extreme: bool = False
    started_ts: float = 0.0
    duration_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    epochs: list[tuple[int, float, float]] = field(default_factory=list)  # epoch, train, val
    updated_ts: float = 0.0

    @property
    def auc(self) -> float | None:
        """The validation AUC, whatever the engine calls it (val_auc, auc, roc_auc...)."""
        for key in ("val_auc", "auc", "roc_auc", "val_roc_auc"):
            if key in self.metrics:
                return self.metrics[key]
        for key, value in self.metrics.items():
            if "auc" in key and not key.startswith("test"):
                return value
        return None


def from_record(experiment: str, record: TrialRecord) -> Trial:
    started = record.started_ts or 0.0
    ended = started + (record.duration_s or 0.0)
    return Trial(
        experiment,
        record.trial,
        state=record.state,
        value=finite(record.value),
        params=dict(record.params),
        architecture=dict(record.architecture),
        n_params=record.n_params,
        worker=record.worker,
        host=record.host,
        forced_extreme=record.forced_extreme,
        started_ts=started,
        duration_s=record.duration_s,
        metrics=dict(record.metrics),
        reason=record.reason,
        epochs=[
            (int(e), math.nan if t is None else float(t), math.nan if v is None else float(v))
            for e, t, v in (row[:3] for row in record.curve if len(row) >= 3)
            if e is not None
        ],
        updated_ts=ended,
    )


def finite(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value
