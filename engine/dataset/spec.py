"""What a trial trains on: dataset reference, labels, windows, splits, normalization.

These are plain values; the campaign config builds them, `engine.dataset.windows`
turns them into tensors. Defaults are the documented defaults of hpotui.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

PriceBasis = Literal["close", "high"]
SplitMode = Literal["contiguous", "chunks"]
Normalization = Literal["zscore", "revin", "rolling"]

_TASK = re.compile(r"^threshold_(\d+(?:\.\d+)?)pct$")


def parse_task(task: str) -> float:
    """`threshold_1pct` -> 1.0 (percent). Raises ValueError for anything else."""
    match = _TASK.match(task)
    if not match:
        raise ValueError(f"unknown task {task!r}; expected threshold_<X>pct, e.g. threshold_1pct")
    return float(match.group(1))


@dataclass(frozen=True)
class LabelSpec:
    """Label 1 when max(basis[t+1..t+h]) >= Close[t] * (1 + threshold_pct / 100).

    Default basis is `high`: a trade entered at the close pays off when the intraday
    high reaches the target (the reference pipeline's final choice).
    """

    task: str = "threshold_1pct"
    horizon: int = 1
    price_basis: PriceBasis = "high"

    @property
    def threshold_pct(self) -> float:
        return parse_task(self.task)


@dataclass(frozen=True)
class SplitSpec:
    """How windows are divided into train / validation / test.

    contiguous: by date, train then validation then test.
    chunks: `n_chunks` scattered blocks per validation and test (regime diversity), every
    window inside a block used. In both modes a purge gap of `purge` windows (at least the
    horizon; None = horizon) separates splits so no label crosses a boundary.
    test_periods: the test windows as that many consecutive blocks at the end of the data
    (contiguous mode only), each preceded by the embargo: the report's walk-forward test
    periods (engine.dataset.periods). The search sees none of them.
    """

    mode: SplitMode = "contiguous"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    n_chunks: int = 4
    purge: int | None = None
    min_val_windows: int = 200
    seed: int = 0
    test_periods: int = 1


@dataclass(frozen=True)
class DataSpec:
    dataset: str = "SP500"
    tier: str = "a25"
    version: int = 1
    context_len: int = 60
    patch_len: int = 10  # model patching of the context window (fixed per experiment)
    stride: int = 5
    labels: LabelSpec = field(default_factory=LabelSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    # rolling won on validation AUC on the demo data (bench/normalization.py, docs/model.md)
    normalization: Normalization = "rolling"
    rolling_window: int = 252  # rows per statistic of `rolling` normalization (a year)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSpec:
        data = dict(data)
        labels = LabelSpec(**data.pop("labels", {}))
        split = SplitSpec(**data.pop("split", {}))
        return cls(labels=labels, split=split, **data)
