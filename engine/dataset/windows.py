"""Windows, splits and normalization: a processed frame -> tensors on the training device.

A window ending at day t holds the `context_len` rows t-L+1 .. t of every feature and
carries the label of day t (`engine.dataset.labels`), computed from the experiment's own
horizon. Candidate windows are the consecutive days L-1 .. n-1-h (the last h days have no
label), so "window position" and "day" differ by a constant and a purge of k windows is a
purge of k days.

Splits, with the embargo between them, and the facts about each split (sizes, dates,
label rates, drift) are `engine.dataset.splits`; walk-forward test periods are
`engine.dataset.periods`; chunks mode's per-segment features `engine.dataset.segments`.

Everything is built once, as tensors on the device; the training loop only indexes them.
The test split exists but only `RunOptions.evaluate_test` makes the trainer look at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.dataset.labels import make_labels
from engine.dataset.normalize import NormStats, instance_normalize, normalize_rows
from engine.dataset.segments import segment_rows
from engine.dataset.spec import DataSpec
from engine.dataset.splits import (
    SPLITS,
    SplitFacts,
    SplitInfo,
    facts_of,
    feature_warmup,
    gap_of,
    split_days,
)
from engine.errors import UserError


@dataclass
class WindowSet:
    """One split's windows. x: (N, L, F) float32, y: (N,) float32, both on the device.

    `days` are the frame row numbers of each window's last day (sorted, numpy), kept to
    check purges and report dates; the training loop never touches them.
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    days: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class PreparedData:
    """Everything a trial trains and evaluates on, already on `device`."""

    spec: DataSpec
    device: torch.device
    feature_names: tuple[str, ...]
    train: WindowSet
    val: WindowSet
    test: WindowSet
    report: list[SplitInfo]
    norm: NormStats
    dates: pd.Index  # the frame's index: dates[days] gives a window's last day
    facts: SplitFacts | None = None  # the report with the gap and drift warnings

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def context_len(self) -> int:
        return self.spec.context_len

    @property
    def horizon(self) -> int:
        return self.spec.labels.horizon

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description, stored with results so any number can be traced."""
        return {
            "data": self.spec.to_dict(),
            "features": list(self.feature_names),
            "splits": [info.to_dict() for info in self.report],
            "normalization": self.norm.to_dict(),
        }


def _feature_matrix(frame: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    names = tuple(str(c) for c in frame.columns)
    try:
        values = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bad = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        raise UserError(
            f"non-numeric feature column(s) {', '.join(bad)}", where="dataset"
        ) from None
    missing = ~np.isfinite(values)
    if missing.any():
        row, col = np.argwhere(missing)[0]
        raise UserError(
            f"missing or infinite value in column {names[col]!r} on {frame.index[row]}",
            where="dataset",
            hint="rebuild the processed dataset (hpotui data build)",
        )
    return values, names


def prepare_data(frame: pd.DataFrame, spec: DataSpec, device: torch.device) -> PreparedData:
    """Labels, the search's splits, normalization and windows for `spec`, as tensors on
    `device`.

    Raises UserError (before any training) when the data is too short or the validation
    split is below `spec.split.min_val_windows`.
    """
    return prepare_windows(frame, spec, split_days(len(frame), spec), device)


def prepare_windows(
    frame: pd.DataFrame, spec: DataSpec, days: dict[str, np.ndarray], device: torch.device
) -> PreparedData:
    """Windows ending on `days` (train / val / test window days, as `split_days` or a
    walk-forward period gives them), normalized as `spec` says, on `device`.

    Normalization statistics (zscore) come from the rows the training windows read. In
    chunks mode every segment's feature rows come from the days it may see
    (`engine.dataset.segments`)."""
    values, names = _feature_matrix(frame)
    labels = make_labels(frame, spec.labels).to_numpy()
    context, horizon = spec.context_len, spec.labels.horizon
    facts = facts_of(
        days, labels, frame.index, gap_of(spec.split, horizon, context), feature_warmup(spec)
    )
    # Rows read by any training window: days t-L+1 .. t for each training day t.
    coverage = np.zeros(len(frame) + 1, dtype=np.int64)
    np.add.at(coverage, days["train"] - context + 1, 1)
    np.add.at(coverage, days["train"] + 1, -1)
    fit_rows = np.cumsum(coverage[:-1]) > 0
    if spec.split.mode == "chunks":
        rolling = spec.rolling_window if spec.normalization == "rolling" else None
        rows_in = segment_rows(frame, spec, days, values, rolling)
        if rolling is not None:
            stats = NormStats("rolling", names, (), (), 0, spec.rolling_window)
            normalized: np.ndarray = rows_in.astype(np.float32)
        else:
            normalized, stats = normalize_rows(rows_in, fit_rows, spec.normalization, names)
    else:
        normalized, stats = normalize_rows(
            values, fit_rows, spec.normalization, names, spec.rolling_window
        )

    rows = torch.from_numpy(normalized)
    offsets = torch.arange(-context + 1, 1)
    sets: dict[str, WindowSet] = {}
    for name in SPLITS:
        day_index = torch.from_numpy(np.asarray(days[name], dtype=np.int64))
        x = rows[day_index[:, None] + offsets]  # (N, L, F)
        if spec.normalization == "revin":
            x = instance_normalize(x)
        y = labels[days[name]]
        sets[name] = WindowSet(
            name=name,
            x=x.to(dtype=torch.float32).to(device),
            y=torch.from_numpy(y.astype(np.float32)).to(device),
            days=np.asarray(days[name]),
        )
    return PreparedData(
        spec=spec,
        device=device,
        feature_names=names,
        train=sets["train"],
        val=sets["val"],
        test=sets["test"],
        report=list(facts.splits),
        norm=stats,
        dates=frame.index,
        facts=facts,
    )
