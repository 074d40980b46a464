"""Chunks mode without feature leaks: each block's features from the days it may see.

In chunks mode validation and test blocks sit between training blocks. A window's
features read back further than the window (SMA 200: 200 days; an EMA, RSI or OBV: every
day before it), so with features computed once over the whole series a training window
after a test block would read that block's prices (issue 22, item 6). Here the windows
are grouped in segments (maximal runs of one split, in time order), and each segment's
feature rows are computed only from the days after the last label day of every earlier
segment it must not see:

- train must not see validation or test;
- validation must not see test (the search chooses on it);
- test may see everything before it.

A segment with nothing to avoid before it keeps the features of the whole series (they
only read the past). The others are computed again from the processed frame's OHLCV
columns (`engine.dataset.features.compute_features`), starting after that label day;
their first rows are warm-up, which the widened gap after each block covers
(`engine.dataset.splits.feature_warmup`). Rolling normalization is computed per segment
on the same rows, so its trailing statistics never cross into a block either. Columns
the frame's tier does not compute (a frame without OHLCV, a test column) are used as they
are. Contiguous splits need none of this: every split reads only days before it, and
the search's splits come in time order.

tests/dataset/test_feature_leaks.py perturbs validation and test prices and checks that no
training window's normalized input changes, in both modes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.dataset.spec import DataSpec
from engine.dataset.splits import SPLITS
from engine.errors import UserError

MUST_NOT_SEE = {"train": ("val", "test"), "val": ("test",), "test": ()}


@dataclass(frozen=True)
class Segment:
    """A maximal run of consecutive windows of one split."""

    split: str
    first: int  # first window day (frame row of the window's last day)
    last: int
    start: int | None  # first frame row its features may read; None: the whole past


def segments(days: dict[str, np.ndarray], horizon: int) -> list[Segment]:
    """The segments of a split layout, in time order, each with where its features
    may start (module doc)."""
    runs: list[tuple[str, np.ndarray]] = []
    for name in SPLITS:
        split = np.asarray(days[name])
        if len(split):
            cuts = np.flatnonzero(np.diff(split) > 1) + 1
            runs += [(name, run) for run in np.split(split, cuts)]
    runs.sort(key=lambda item: int(item[1][0]))
    out = []
    for index, (name, run) in enumerate(runs):
        avoided = [int(r[-1]) for s, r in runs[:index] if s in MUST_NOT_SEE[name]]
        start = max(avoided) + horizon + 1 if avoided else None
        out.append(Segment(name, int(run[0]), int(run[-1]), start))
    return out


def _recomputed(
    frame: pd.DataFrame, spec: DataSpec, values: np.ndarray, start: int, last: int
) -> np.ndarray:
    """Feature rows start .. last computed from the OHLCV of those rows only."""
    from engine.dataset.features import BASE_COLUMNS, compute_features

    span = values[start : last + 1].copy()
    if not all(c in frame.columns for c in BASE_COLUMNS):
        return span  # no prices to compute anything from: columns as they are
    part = frame.iloc[start : last + 1]
    computed = compute_features(part[BASE_COLUMNS], spec.tier).reindex(part.index)
    for j, column in enumerate(frame.columns):
        if column in computed.columns:
            span[:, j] = computed[column].to_numpy(dtype=np.float64)
    return span


def segment_rows(
    frame: pd.DataFrame,
    spec: DataSpec,
    days: dict[str, np.ndarray],
    values: np.ndarray,
    rolling: int | None,
) -> np.ndarray:
    """(rows, features) float64: for the rows each segment's windows read, the features
    computed from what that segment may see, rolling-normalized per segment when
    `rolling` is a window; NaN for rows no window reads."""
    from engine.dataset.normalize import rolling_zscore

    context = spec.context_len
    out = np.full(values.shape, np.nan)
    for seg in segments(days, spec.labels.horizon):
        origin = 0 if seg.start is None else seg.start
        if seg.start is None:
            span = values[: seg.last + 1]
        else:
            span = _recomputed(frame, spec, values, seg.start, seg.last)
        read = slice(seg.first - context + 1, seg.last + 1)
        if rolling is not None:
            valid = int(np.argmax(np.isfinite(span).all(axis=1)))
            rolled = np.full(span.shape, np.nan)
            rolled[valid:] = rolling_zscore(span[valid:], rolling)
            span = rolled
        rows = span[read.start - origin : read.stop - origin]
        if read.start < origin or not np.isfinite(rows).all():
            raise UserError(
                f"the {seg.split} windows from row {seg.first} read feature rows that "
                f"are still warming up after row {origin} (the gap after a block is too "
                "short for this tier's look-back)",
                where="split",
                hint="report this: engine.dataset.splits.feature_warmup is too small",
            )
        out[read] = rows
    return out
