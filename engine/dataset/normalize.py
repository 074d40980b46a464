"""Feature normalization: nothing about validation or test rows ever enters it.

`zscore`: per-feature mean and standard deviation computed over the rows that the
training windows read, then applied to every row. Validation and test rows never
enter the statistics, so nothing about their distribution leaks into training.

`revin`: reversible instance normalization without the affine part: each window is
standardized per feature by its own context's mean and deviation. It removes price-level
drift between training years and recent years (the reference pipeline's predictions
collapsed to a constant on new data, original-pipeline.md item 7) and needs no fitted
statistics, so there is nothing to leak. The classifier outputs a probability, so the
"reverse" step of RevIN has nothing to undo.

`rolling` (the default, DataSpec.normalization): each row standardized per feature by
the mean and deviation of the trailing `rolling_window` rows ending at it (fewer at the
start of the data, or of a chunks-mode segment: engine/dataset/segments.py): statistics
from the past only, so like RevIN it fits nothing and follows the level of each period,
but every row of a window keeps its own scale (a window's last day is not re-centred on
the others).

The choice is `normalization` in the config (DataSpec.normalization), stored with every
trial's data summary; docs/model.md compares the three on the demo data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.dataset.spec import Normalization

# A feature whose spread is below this (constant in the training rows, or in a window)
# is centred but not scaled, instead of being blown up by a division by ~0.
MIN_STD = 1e-8


@dataclass(frozen=True)
class NormStats:
    """What was fitted: per-feature mean/std (z-score) and the rows it was fitted on."""

    method: Normalization
    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fitted_rows: int
    window: int = 0  # rolling: trailing rows per statistic

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "fitted_rows": self.fitted_rows,
            "window": self.window,
            # empty for RevIN and rolling, which fit nothing
            "mean": dict(zip(self.feature_names, self.mean, strict=False)),
            "std": dict(zip(self.feature_names, self.std, strict=False)),
        }


def fit_zscore(
    values: np.ndarray, fit_rows: np.ndarray, feature_names: tuple[str, ...]
) -> NormStats:
    """Mean and std per column of `values` (rows, features) over rows where `fit_rows`."""
    fitted = values[fit_rows].astype(np.float64)
    if len(fitted) == 0:
        raise ValueError("no training rows to fit the normalization on")
    mean = fitted.mean(axis=0)
    std = fitted.std(axis=0)
    return NormStats(
        method="zscore",
        feature_names=feature_names,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        fitted_rows=len(fitted),
    )


def apply_zscore(values: np.ndarray, stats: NormStats) -> np.ndarray:
    """(values - mean) / std with the fitted statistics, as float32."""
    mean = np.asarray(stats.mean, dtype=np.float64)
    std = np.asarray(stats.std, dtype=np.float64)
    scale = np.where(std < MIN_STD, 1.0, std)
    return ((values.astype(np.float64) - mean) / scale).astype(np.float32)


def revin_stats(feature_names: tuple[str, ...], fitted_rows: int) -> NormStats:
    """RevIN has no fitted statistics; the record says so (empty mean/std)."""
    return NormStats("revin", feature_names, (), (), fitted_rows)


def instance_normalize(windows: torch.Tensor) -> torch.Tensor:
    """(N, L, F) windows standardized per window and feature over the L context steps."""
    mean = windows.mean(dim=1, keepdim=True)  # (N, 1, F)
    std = windows.std(dim=1, keepdim=True, unbiased=False)  # (N, 1, F)
    scale = torch.where(std < MIN_STD, torch.ones_like(std), std)
    return (windows - mean) / scale


def rolling_zscore(values: np.ndarray, window: int) -> np.ndarray:
    """(rows, features): each row minus the mean of the `window` rows ending at it, over
    their standard deviation (float64 statistics, float32 out)."""
    if window < 2:
        raise ValueError(f"rolling window must be >= 2, got {window}")
    trailing = pd.DataFrame(values.astype(np.float64)).rolling(window, min_periods=1)
    mean = trailing.mean().to_numpy()
    std = trailing.std(ddof=0).to_numpy()
    scale = np.where(std < MIN_STD, 1.0, std)
    normalized: np.ndarray = ((values - mean) / scale).astype(np.float32)
    return normalized


def normalize_rows(
    values: np.ndarray,
    fit_rows: np.ndarray,
    method: Normalization,
    feature_names: tuple[str, ...],
    window: int = 252,
) -> tuple[np.ndarray, NormStats]:
    """Row-level step of each method: z-score applies fitted stats and rolling its trailing
    stats (float32 out); RevIN defers to `instance_normalize` on the windows and keeps
    float64, since raw volumes (~1e9) and OBV (~1e11) lose the window's spread in float32
    arithmetic."""
    if method == "zscore":
        stats = fit_zscore(values, fit_rows, feature_names)
        return apply_zscore(values, stats), stats
    if method == "revin":
        return values.astype(np.float64), revin_stats(feature_names, int(fit_rows.sum()))
    if method == "rolling":
        stats = NormStats("rolling", feature_names, (), (), 0, window)
        return rolling_zscore(values, window), stats
    raise ValueError(f"unknown normalization {method!r}")
