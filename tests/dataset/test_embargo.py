"""The embargo between splits, as a property over random configurations.

A window ending at day t reads the inputs t-L+1 .. t and its label looks at t+1 .. t+h.
For any split configuration, no day touched by a training window may be touched by a
validation or test window (and validation and test keep apart the same way).
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec
from engine.dataset.splits import SPLITS, split_days, split_positions
from engine.errors import UserError

N_CONFIGS = 400


def touched(days: np.ndarray, context: int, horizon: int, n_rows: int) -> np.ndarray:
    """Boolean mask of the days any of these windows reads as input or as label."""
    mask = np.zeros(n_rows + 1, dtype=np.int64)
    np.add.at(mask, days - context + 1, 1)
    np.add.at(mask, days + horizon + 1, -1)
    return np.cumsum(mask[:-1]) > 0


def random_spec(rng: np.random.Generator) -> tuple[int, DataSpec]:
    horizon = int(rng.integers(1, 11))
    purge = None if rng.random() < 0.5 else horizon + int(rng.integers(0, 6))
    split = SplitSpec(
        mode="chunks" if rng.random() < 0.5 else "contiguous",
        val_fraction=float(rng.uniform(0.05, 0.3)),
        test_fraction=float(rng.choice([0.0, rng.uniform(0.05, 0.3)])),
        n_chunks=int(rng.integers(1, 7)),
        purge=purge,
        min_val_windows=1,
        seed=int(rng.integers(0, 1000)),
    )
    context = int(rng.integers(2, 90))
    spec = DataSpec(
        context_len=context, patch_len=1, labels=LabelSpec(horizon=horizon), split=split
    )
    return int(rng.integers(300, 6000)), spec


def overlaps(days: dict[str, np.ndarray], spec: DataSpec, n_rows: int) -> list[str]:
    context, horizon = spec.context_len, spec.labels.horizon
    masks = {name: touched(days[name], context, horizon, n_rows) for name in SPLITS}
    pairs = (("train", "val"), ("train", "test"), ("val", "test"))
    return [f"{a}/{b}" for a, b in pairs if (masks[a] & masks[b]).any()]


def test_no_split_touches_a_day_another_split_touches() -> None:
    rng = np.random.default_rng(20261128)
    checked = 0
    for _ in range(N_CONFIGS):
        n_rows, spec = random_spec(rng)
        try:
            days = split_days(n_rows, spec)
        except UserError:
            continue  # too little data for this layout: refused, nothing to check
        assert not overlaps(days, spec, n_rows), (n_rows, spec)
        checked += 1
    assert checked >= N_CONFIGS // 2  # most random configurations are valid layouts


def test_a_purge_without_the_context_embargo_would_leak() -> None:
    """The check above can fail: the horizon-only purge (context_len ignored) overlaps."""
    rng = np.random.default_rng(7)
    leaking = 0
    for _ in range(50):
        n_rows, spec = random_spec(rng)
        n_windows = n_rows - spec.labels.horizon - spec.context_len + 1
        try:
            positions = split_positions(n_windows, spec.split, spec.labels.horizon, 1)
        except UserError:
            continue
        days = {name: positions[name] + spec.context_len - 1 for name in SPLITS}
        leaking += bool(overlaps(days, spec, n_rows))
    assert leaking > 20


@pytest.mark.parametrize("tier", ["a25", "ohlcv"])
@pytest.mark.parametrize("mode", ["contiguous", "chunks"])
def test_gap_costs_purge_plus_context_windows_per_boundary(mode: str, tier: str) -> None:
    """Contiguous: purge + context - 1 per boundary. Chunks: the same before each block and
    that plus the tier's feature warm-up after it (SMA 200: 199 rows; none for ohlcv)."""
    spec = DataSpec(
        tier=tier,
        context_len=60,
        labels=LabelSpec(horizon=5),
        split=SplitSpec(mode=mode, n_chunks=3, min_val_windows=1),
    )
    days = split_days(5000, spec)
    used = sum(len(days[name]) for name in SPLITS)
    gap = 5 + 60 - 1
    if mode == "contiguous":
        assert 5000 - 5 - 59 - used == 2 * gap
    else:  # both sides of 6 blocks
        warmup = 199 if tier == "a25" else 0
        assert 5000 - 5 - 59 - used == 6 * gap + 6 * (gap + warmup)
