"""The report's data: each experiment's processed dataset, its walk-forward periods, the
windows of each period, and the baselines fitted on them, each built once.

`load_period` is what a worker process calls (engine/report/pool.py); `PeriodData` is the
parent's cache: the experiments of one horizon share a data spec, so they share its
windows and baselines.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from engine.dataset.periods import TestPeriod, prepare_period, test_periods
from engine.dataset.spec import DataSpec
from engine.dataset.windows import PreparedData
from engine.report.baselines import Baseline, baselines

Loader = Callable[[DataSpec, int, str], PreparedData]  # spec, period (1-based), device
LabelLoader = Callable[[DataSpec], NDArray[np.float64]]


@functools.lru_cache(maxsize=4)
def _frame(dataset: str, tier: str, version: int) -> pd.DataFrame:
    from engine.dataset.build import ensure_dataset
    from engine.dataset.manifest import load_processed

    ensure_dataset(dataset, tier, version)
    frame, _ = load_processed(dataset, tier, version)
    return frame


def frame_of(spec: DataSpec) -> pd.DataFrame:
    """The processed dataset `spec` reads (built from its raw data when missing)."""
    return _frame(spec.dataset, spec.tier, spec.version)


def periods_of(spec: DataSpec) -> tuple[TestPeriod, ...]:
    return test_periods(len(frame_of(spec)), spec)


def load_period(spec: DataSpec, period: int, device: str) -> PreparedData:
    """Period `period`'s windows of `spec` on `device` (UserError for a missing dataset
    or a layout the data cannot hold)."""
    from engine.train.device import resolve_device

    frame = frame_of(spec)
    return prepare_period(frame, spec, test_periods(len(frame), spec)[period - 1],
                          resolve_device(device))  # fmt: skip


def load_labels(spec: DataSpec) -> NDArray[np.float64]:
    """The label of every row of `spec`'s frame (NaN where the future is missing)."""
    from engine.dataset.labels import make_labels

    return np.asarray(make_labels(frame_of(spec), spec.labels).to_numpy(), dtype=np.float64)


def count_periods(spec: DataSpec) -> int:
    return len(periods_of(spec))


class PeriodData:
    """Windows and baselines per (data spec, period), built once per report."""

    def __init__(self, load: Loader | None = None, labels: LabelLoader | None = None) -> None:
        self._load = load or load_period
        self._labels = labels or load_labels
        self._data: dict[str, PreparedData] = {}
        self._baselines: dict[str, list[Baseline]] = {}

    def get(self, spec: DataSpec, period: int, device: str) -> PreparedData:
        key = repr((spec, period, device))
        if key not in self._data:
            self._data[key] = self._load(spec, period, device)
        return self._data[key]

    def baselines(self, spec: DataSpec, period: int, device: str) -> list[Baseline]:
        key = repr((spec, period))  # baselines run on a CPU copy: the device changes nothing
        if key not in self._baselines:
            data = self.get(spec, period, device)
            self._baselines[key] = baselines(data, self._labels(spec), period)
        return self._baselines[key]
