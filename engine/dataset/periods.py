"""Walk-forward test periods: the one layout every evaluation on the test windows uses.

The search uses one split (`engine.dataset.splits.split_days`): train, validation, and
the test windows, which it never sees. Evaluation on the test windows is walk-forward.
With `split.test_periods = K` (contiguous mode) the test windows are K consecutive blocks
at the end of the data, each preceded by the embargo gap. For block k a model

- trains on every window before it, less the embargo (`TestPeriod.train`),
- stops early on the last part of that span: as many windows as the search's
  validation split, with the gap on both sides (`TestPeriod.early_stop`),
- and is tested once on block k (`TestPeriod.test`).

Period 1 is exactly the search's split (its train, its validation, the first block).
Later periods also train on the earlier test blocks: the data a user would have had.

In chunks mode there is one period: the search's own split (train blocks, validation
blocks to stop on, test blocks).

Who uses it: the scaling report (`engine/report`) retrains and refits its baselines per
period, and any later evaluation (final experiments) must use the same periods. Both go
through `test_periods` and `prepare_period` only, so splits, embargo, feature restarts
(chunks) and periods cannot differ between them:

    periods = test_periods(len(frame), spec)          # no windows built, cheap
    data = prepare_period(frame, spec, periods[k], device)
    # data.train / data.val (early stopping) / data.test: tensors on the device
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.dataset.spec import DataSpec
from engine.dataset.splits import gap_of, split_days
from engine.dataset.windows import PreparedData, prepare_windows


@dataclass(frozen=True)
class TestPeriod:
    """One walk-forward period: window days (frame row of each window's last day)."""

    __test__ = False  # not a pytest class despite the name

    index: int  # 1 .. K, in time order
    train: np.ndarray
    early_stop: np.ndarray
    test: np.ndarray

    @property
    def name(self) -> str:
        return f"P{self.index}"

    def days(self) -> dict[str, np.ndarray]:
        """As `split_days` gives them: the early-stopping windows are the "val" split."""
        return {"train": self.train, "val": self.early_stop, "test": self.test}

    def to_dict(self, dates: pd.Index | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"period": self.index}
        for name, days in (("train", self.train), ("early_stop", self.early_stop),
                           ("test", self.test)):  # fmt: skip
            out[name] = {"windows": len(days)}
            if dates is not None and len(days):
                out[name]["first"] = _date(dates, int(days[0]))
                out[name]["last"] = _date(dates, int(days[-1]))
        return out


def _date(dates: pd.Index, day: int) -> str:
    value = dates[day]
    return value.date().isoformat() if isinstance(value, pd.Timestamp) else str(value)


def _runs(days: np.ndarray) -> list[np.ndarray]:
    """Consecutive runs of sorted window days."""
    if len(days) == 0:
        return []
    cuts = np.flatnonzero(np.diff(days) > 1) + 1
    return list(np.split(days, cuts))


def test_periods(n_rows: int, spec: DataSpec) -> tuple[TestPeriod, ...]:
    """The walk-forward periods of `spec` on a frame of `n_rows` rows (module doc).

    UserError (from `split_days`) when the data cannot hold the layout."""
    search = split_days(n_rows, spec)
    if spec.split.mode == "chunks" or len(search["test"]) == 0:
        return (TestPeriod(1, search["train"], search["val"], search["test"]),)
    gap = gap_of(spec.split, spec.labels.horizon, spec.context_len)
    first_day = spec.context_len - 1
    n_val = len(search["val"])
    periods = []
    for index, block in enumerate(_runs(search["test"]), start=1):
        stop_end = int(block[0]) - gap  # exclusive
        stop_start = stop_end - n_val
        train_end = stop_start - gap
        periods.append(
            TestPeriod(
                index,
                np.arange(first_day, train_end),
                np.arange(stop_start, stop_end),
                block,
            )
        )
    return tuple(periods)


test_periods.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def prepare_period(
    frame: pd.DataFrame, spec: DataSpec, period: TestPeriod, device: torch.device
) -> PreparedData:
    """The windows of one period as tensors on `device` (its `val` is the period's
    early-stopping split), built exactly as the search's data is."""
    return prepare_windows(frame, spec, period.days(), device)
