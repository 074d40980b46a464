"""Windows, splits and normalization: a processed frame -> tensors on the training device.

A window ending at day t holds the `context_len` rows t-L+1 .. t of every feature and
carries the label of day t (`engine.dataset.labels`), computed from the experiment's own
horizon. Candidate windows are the consecutive days L-1 .. n-1-h (the last h days have no
label), so "window position" and "day" differ by a constant and a purge of k windows is a
purge of k days.

Splits (SplitSpec):
- contiguous: train, then validation, then test, by date. `purge` windows (default: the
  horizon) are dropped before each later split, so the label of the last training window
  (days t+1 .. t+h) ends before the first validation window's day: no label crosses a
  boundary.
- chunks: `n_chunks` validation blocks and `n_chunks` test blocks scattered over the
  timeline (regime diversity). The timeline is cut into 2*n_chunks equal strata; a seeded
  shuffle says which strata hold validation and which test blocks, and each block sits at
  a seeded offset inside its stratum. Every window inside a block is used (the reference
  used one window per block: 18 validation samples, item 6). `purge` windows on both sides
  of a block are dropped from training.

Everything is built once, as tensors on the device; the training loop only indexes them.
The test split exists but only `RunOptions.evaluate_test` makes the trainer look at it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.dataset.labels import make_labels
from engine.dataset.normalize import NormStats, instance_normalize, normalize_rows
from engine.dataset.spec import DataSpec, SplitSpec
from engine.errors import UserError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitInfo:
    """What one split holds: its window count, the days its windows end on, label rate."""

    name: str
    size: int
    start: str  # date of the first window's last day ("" when empty)
    end: str
    label_rate: float  # NaN when empty
    blocks: int  # contiguous runs of windows (1 for contiguous splits)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"{self.name:<5} {self.size:>6} windows  {self.start} .. {self.end}  "
            f"label rate {self.label_rate:.3f}  blocks {self.blocks}"
        )


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


def purge_of(spec: SplitSpec, horizon: int) -> int:
    """The purge in windows: SplitSpec.purge, or the horizon when unset; never below it."""
    purge = horizon if spec.purge is None else spec.purge
    if purge < horizon:
        raise UserError(
            f"purge {purge} is shorter than the horizon {horizon}: labels would cross "
            "from one split into the next",
            where="split.purge",
            hint=f"set it to at least {horizon} or leave it unset",
        )
    return purge


def split_positions(n_windows: int, spec: SplitSpec, horizon: int) -> dict[str, np.ndarray]:
    """Window positions (0 .. n_windows-1) of train, val and test, each sorted."""
    if not 0 < spec.val_fraction < 1 or not 0 <= spec.test_fraction < 1:
        raise UserError(
            f"val_fraction {spec.val_fraction} / test_fraction {spec.test_fraction} must be "
            "in (0, 1) / [0, 1)",
            where="split",
        )
    if spec.val_fraction + spec.test_fraction >= 1:
        raise UserError("val_fraction + test_fraction leaves nothing to train on", where="split")
    purge = purge_of(spec, horizon)
    n_val = round(n_windows * spec.val_fraction)
    n_test = round(n_windows * spec.test_fraction)
    if spec.mode == "contiguous":
        return _contiguous(n_windows, n_val, n_test, purge)
    if spec.mode == "chunks":
        return _chunks(n_windows, n_val, n_test, purge, spec)
    raise UserError(f"unknown split mode {spec.mode!r}", where="split.mode")


def _contiguous(n: int, n_val: int, n_test: int, purge: int) -> dict[str, np.ndarray]:
    test_start = n - n_test
    val_end = test_start - purge if n_test else n
    val_start = max(val_end - n_val, 0)
    train_end = max(val_start - purge, 0)
    return {
        "train": np.arange(0, train_end),
        "val": np.arange(val_start, max(val_end, val_start)),
        "test": np.arange(test_start, n),
    }


def _chunks(n: int, n_val: int, n_test: int, purge: int, spec: SplitSpec) -> dict[str, np.ndarray]:
    if spec.n_chunks < 1:
        raise UserError(f"n_chunks must be >= 1, got {spec.n_chunks}", where="split.n_chunks")
    kinds = ["val"] * spec.n_chunks + (["test"] * spec.n_chunks if n_test else [])
    sizes = {
        "val": [len(a) for a in np.array_split(np.arange(n_val), spec.n_chunks)],
        "test": [len(a) for a in np.array_split(np.arange(n_test), spec.n_chunks)],
    }
    rng = np.random.default_rng(spec.seed)
    rng.shuffle(kinds)
    strata = np.linspace(0, n, len(kinds) + 1).astype(int)
    taken = np.zeros(n, dtype=bool)  # in a block or in a purge zone around one
    blocks: dict[str, list[np.ndarray]] = {"val": [], "test": []}
    for index, kind in enumerate(kinds):
        size = sizes[kind].pop()
        low, high = int(strata[index]), int(strata[index + 1])
        room = (high - low) - size - 2 * purge
        if room < 0:
            raise UserError(
                f"a {kind} block of {size} windows plus purges of {purge} does not fit in "
                f"{high - low} windows ({len(kinds)} blocks over {n} windows)",
                where="split.n_chunks",
                hint="use fewer chunks or more data",
            )
        start = low + purge + int(rng.integers(0, room + 1))
        blocks[kind].append(np.arange(start, start + size))
        taken[start - purge : start + size + purge] = True
    return {
        "train": np.flatnonzero(~taken),
        "val": np.sort(np.concatenate(blocks["val"])) if blocks["val"] else np.arange(0),
        "test": np.sort(np.concatenate(blocks["test"])) if blocks["test"] else np.arange(0),
    }


def count_blocks(positions: np.ndarray) -> int:
    """Number of runs of consecutive positions."""
    if len(positions) == 0:
        return 0
    return int(1 + np.count_nonzero(np.diff(positions) > 1))


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


def _date_text(dates: pd.Index, day: int) -> str:
    value = dates[day]
    return value.date().isoformat() if isinstance(value, pd.Timestamp) else str(value)


def _split_info(
    name: str, positions: np.ndarray, days: np.ndarray, y: np.ndarray, dates: pd.Index
) -> SplitInfo:
    if len(positions) == 0:
        return SplitInfo(name, 0, "", "", float("nan"), 0)
    return SplitInfo(
        name=name,
        size=len(positions),
        start=_date_text(dates, int(days[0])),
        end=_date_text(dates, int(days[-1])),
        label_rate=float(y.mean()),
        blocks=count_blocks(positions),
    )


def prepare_data(frame: pd.DataFrame, spec: DataSpec, device: torch.device) -> PreparedData:
    """Labels, splits, normalization and windows for `spec`, as tensors on `device`.

    Raises UserError (before any training) when the data is too short or the validation
    split is below `spec.split.min_val_windows`.
    """
    values, names = _feature_matrix(frame)
    labels = make_labels(frame, spec.labels).to_numpy()
    context, horizon = spec.context_len, spec.labels.horizon
    if context < 1:
        raise UserError(f"context_len must be >= 1, got {context}", where="data.context_len")
    first_day = context - 1
    last_day = len(frame) - 1 - horizon  # the last day with a complete future
    n_windows = last_day - first_day + 1
    if n_windows < 1:
        raise UserError(
            f"{len(frame)} rows are too few for context {context} and horizon {horizon}",
            where="data",
        )
    positions = split_positions(n_windows, spec.split, horizon)
    n_val = len(positions["val"])
    if n_val < spec.split.min_val_windows:
        raise UserError(
            f"validation split has {n_val} windows, below the minimum of "
            f"{spec.split.min_val_windows} (horizon {horizon}, split {spec.split.mode}, "
            f"val_fraction {spec.split.val_fraction}, {n_windows} windows in all)",
            where="split.min_val_windows",
            hint="use more data, a larger val_fraction, or lower split.min_val_windows",
        )
    if len(positions["train"]) == 0:
        raise UserError("no training windows left after the splits", where="split")

    days = {name: positions[name] + first_day for name in SPLITS}
    # Rows read by any training window: days t-L+1 .. t for each training day t.
    coverage = np.zeros(len(frame) + 1, dtype=np.int64)
    np.add.at(coverage, days["train"] - context + 1, 1)
    np.add.at(coverage, days["train"] + 1, -1)
    fit_rows = np.cumsum(coverage[:-1]) > 0
    normalized, stats = normalize_rows(values, fit_rows, spec.normalization, names)

    rows = torch.from_numpy(normalized)
    offsets = torch.arange(-context + 1, 1)
    sets: dict[str, WindowSet] = {}
    report: list[SplitInfo] = []
    for name in SPLITS:
        day_index = torch.from_numpy(days[name])
        x = rows[day_index[:, None] + offsets]  # (N, L, F)
        if spec.normalization == "revin":
            x = instance_normalize(x)
        y = labels[days[name]]
        sets[name] = WindowSet(
            name=name,
            x=x.to(dtype=torch.float32).to(device),
            y=torch.from_numpy(y.astype(np.float32)).to(device),
            days=days[name],
        )
        report.append(_split_info(name, positions[name], days[name], y, frame.index))
    return PreparedData(
        spec=spec,
        device=device,
        feature_names=names,
        train=sets["train"],
        val=sets["val"],
        test=sets["test"],
        report=report,
        norm=stats,
        dates=frame.index,
    )
