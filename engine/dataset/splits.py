"""Where each split's windows lie, with the embargo between splits, and the facts about them.

Window positions 0 .. n_windows-1 are the days L-1 .. n_rows-1-h (`engine.dataset.windows`
explains windows). A window ending at day t touches the days t-L+1 .. t+h: its inputs,
then its label's future. Two windows of different splits must share none of those days,
so every split boundary drops `gap = purge + context_len - 1` windows (`gap_of`): `purge`
(default and minimum: the horizon) puts the earlier split's last label before the later
split's first window day, and context_len - 1 more put the later split's first input
after that label. Window end days of different splits are at least purge + context_len
apart, in both directions. Purging the horizon alone let 236 training windows read
validation/test label days as inputs in chunks mode (issue 13, item 6).

Features read further back than the window: an SMA 200 reads 200 days, an EMA or OBV
every day before it. In contiguous mode that is harmless (each split only reads days
before it, and the search's splits come in time order). In chunks mode a training block
after a validation or test block would read that block's prices through its features
(issue 22, item 6: 68-73% of the training windows did). So in chunks mode the features of
every block after a block it must not see are computed again from the days after that
block's last label (`engine.dataset.segments`), and the gap after each validation or test
block is widened by the tier's feature warm-up (`feature_warmup`), the rows those
features need before their first value: `gap_after = gap + warm-up`.

Test periods (`split.test_periods = K`, contiguous mode): the test windows are K
consecutive blocks at the end of the data, each preceded by the gap. The search's
splits are unchanged (train, gap, validation, gap, then the K blocks); the report's
walk-forward retraining (`engine.dataset.periods`) trains on everything before each block.

Split facts (`split_facts`): per split its window count, first and last window day, label
rate and number of blocks, plus a drift warning when a split's label rate differs from
train's by more than DRIFT_LIMIT (`label_drift`: the one drift convention, docs/data.md).
One function, used by `hpotui check`, the scaling report and the TUI's experiment detail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.dataset.labels import make_labels
from engine.dataset.spec import DataSpec, SplitSpec
from engine.errors import UserError

SPLITS = ("train", "val", "test")

# A split whose label rate differs from train's by more than this, relative to the rarer
# class's training rate min(p, 1-p), gets a drift warning. 20%: (1) it is above sampling
# noise: the standard error of a 0.25 rate over the demo's ~650 validation windows is
# 0.017 (7% relative; ~2.2x that with horizon 5's overlapping labels); (2) it is where
# drift starts to decide rankings: a constant at the train rate p scored on data of rate
# q loses KL(q||p) nats, 0.005-0.007 at 20% for p in 0.25..0.6, the size of the gaps
# between the search's trials and of the margin by which best models beat the prior.
DRIFT_LIMIT = 0.20


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


def gap_of(spec: SplitSpec, horizon: int, context_len: int) -> int:
    """Windows dropped at each split boundary: the purge plus the context embargo."""
    return purge_of(spec, horizon) + context_len - 1


def feature_warmup(spec: DataSpec) -> int:
    """Extra windows dropped after each validation/test block in chunks mode: the rows the
    tier's features need before their first value (0 in contiguous mode; module doc)."""
    if spec.split.mode != "chunks":
        return 0
    from engine.dataset.features import max_warmup

    try:
        return max_warmup(spec.tier)
    except UserError as error:
        raise UserError(str(error), where="tier", hint=error.hint) from None


MIN_PERIOD_WINDOWS = 20  # a test period shorter than this says little about anything


def split_positions(
    n_windows: int, spec: SplitSpec, horizon: int, context_len: int, warmup: int = 0
) -> dict[str, np.ndarray]:
    """Window positions (0 .. n_windows-1) of train, val and test, each sorted, with
    `gap_of` windows between any two splits (plus `warmup` after each chunks block)."""
    if not 0 < spec.val_fraction < 1 or not 0 <= spec.test_fraction < 1:
        raise UserError(
            f"val_fraction {spec.val_fraction} / test_fraction {spec.test_fraction} must be "
            "in (0, 1) / [0, 1)",
            where="split",
        )
    if spec.val_fraction + spec.test_fraction >= 1:
        raise UserError("val_fraction + test_fraction leaves nothing to train on", where="split")
    if spec.test_periods < 1:
        raise UserError(
            f"test_periods must be >= 1, got {spec.test_periods}", where="split.test_periods"
        )
    gap = gap_of(spec, horizon, context_len)
    n_val = round(n_windows * spec.val_fraction)
    n_test = round(n_windows * spec.test_fraction)
    if spec.mode == "contiguous":
        return _contiguous(n_windows, n_val, n_test, gap, spec.test_periods)
    if spec.mode == "chunks":
        if spec.test_periods > 1:
            raise UserError(
                f'test_periods = {spec.test_periods} needs split mode "contiguous": test '
                "periods are consecutive blocks at the end of the data, chunks scatter the "
                "test windows",
                where="split.test_periods",
                hint='set split.mode = "contiguous" or test_periods = 1',
            )
        return _chunks(n_windows, n_val, n_test, gap, spec, warmup)
    raise UserError(f"unknown split mode {spec.mode!r}", where="split.mode")


def _contiguous(n: int, n_val: int, n_test: int, gap: int, periods: int) -> dict[str, np.ndarray]:
    """train | gap | val | gap | test 1 | gap | test 2 ... | test K (the end)."""
    blocks: list[np.ndarray] = []
    end = n
    if n_test:
        if n_test // periods < MIN_PERIOD_WINDOWS:
            raise UserError(
                f"test_periods = {periods} splits {n_test} test windows into blocks of "
                f"{n_test // periods}, fewer than {MIN_PERIOD_WINDOWS}",
                where="split.test_periods",
                hint="use fewer test periods, a larger test_fraction or more data",
            )
        sizes = [len(a) for a in np.array_split(np.arange(n_test), periods)]
        for size in reversed(sizes):
            start = end - size
            blocks.insert(0, np.arange(max(start, 0), max(end, 0)))
            end = start - gap
    val_end = end if n_test else n
    val_start = max(val_end - n_val, 0)
    train_end = max(val_start - gap, 0)
    test = np.concatenate(blocks) if blocks else np.arange(0)
    return {
        "train": np.arange(0, train_end),
        "val": np.arange(val_start, max(val_end, val_start)),
        "test": test[test >= 0],
    }


def _chunks(
    n: int, n_val: int, n_test: int, gap: int, spec: SplitSpec, warmup: int
) -> dict[str, np.ndarray]:
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
    taken = np.zeros(n, dtype=bool)  # in a block or in the gap around one
    blocks: dict[str, list[np.ndarray]] = {"val": [], "test": []}
    after = gap + warmup  # the next block's features restart after this one (module doc)
    for index, kind in enumerate(kinds):
        size = sizes[kind].pop()
        low, high = int(strata[index]), int(strata[index + 1])
        room = (high - low) - size - gap - after
        if room < 0:
            raise UserError(
                f"a {kind} block of {size} windows plus a gap of {gap} (purge + context_len "
                f"- 1) before it and {after} after it (+ {warmup} rows of feature warm-up) "
                f"does not fit in {high - low} windows ({len(kinds)} blocks over {n} windows)",
                where="split.n_chunks",
                hint="use fewer chunks or more data",
            )
        start = low + gap + int(rng.integers(0, room + 1))
        blocks[kind].append(np.arange(start, start + size))
        taken[max(start - gap, 0) : start + size + after] = True
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


def split_days(n_rows: int, spec: DataSpec) -> dict[str, np.ndarray]:
    """The frame row (day) each window of each split ends on, sorted; UserError (before
    any training) when the data is too short or the validation split below its minimum."""
    context, horizon = spec.context_len, spec.labels.horizon
    if context < 1:
        raise UserError(f"context_len must be >= 1, got {context}", where="data.context_len")
    first_day = context - 1
    n_windows = n_rows - horizon - first_day  # last day with a complete future: n-1-h
    if n_windows < 1:  # named after the longer of the two: the one to shorten
        if horizon >= context:
            raise UserError(
                f"horizon {horizon} is longer than the data: {n_rows} rows hold no window "
                f"of context {context} followed by {horizon} rows to label it",
                where="labels.horizon",
                hint=f"use a horizon of at most {max(1, n_rows - context)}",
            )
        raise UserError(
            f"context_len {context} is longer than the data: {n_rows} rows hold no window "
            f"of context {context} followed by {horizon} rows to label it",
            where="data.context_len",
            hint=f"use a context_len of at most {max(1, n_rows - horizon)}",
        )
    positions = split_positions(n_windows, spec.split, horizon, context, feature_warmup(spec))
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
    return {name: positions[name] + first_day for name in SPLITS}


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


def split_info(name: str, days: np.ndarray, labels: np.ndarray, dates: pd.Index) -> SplitInfo:
    """The facts of one split from its window days and the frame's labels and dates."""
    if len(days) == 0:
        return SplitInfo(name, 0, "", "", float("nan"), 0)
    return SplitInfo(
        name=name,
        size=len(days),
        start=_date_text(dates, int(days[0])),
        end=_date_text(dates, int(days[-1])),
        label_rate=float(labels[days].mean()),
        blocks=count_blocks(days),
    )


def _date_text(dates: pd.Index, day: int) -> str:
    value = dates[day]
    return value.date().isoformat() if isinstance(value, pd.Timestamp) else str(value)


def label_drift(fitted_rate: float, rate: float) -> float:
    """The one drift convention (docs/data.md): the signed change of a label rate from the
    rate of the windows a model was fitted on (the search: train; a report period: its
    training span), relative to the rarer class there, min(p, 1 - p). -0.4 reads "the
    rarer class is 40% rarer"; |drift| > DRIFT_LIMIT is called drift everywhere."""
    base = min(fitted_rate, 1.0 - fitted_rate)
    return (rate - fitted_rate) / base if base > 0 else float("nan")


@dataclass(frozen=True)
class SplitFacts:
    """Window counts, dates and label rates of train / val / test, and their drift."""

    splits: tuple[SplitInfo, ...]
    gap: int  # windows dropped at each split boundary (purge + context_len - 1)
    warmup: int = 0  # chunks: more windows dropped after each validation/test block

    def get(self, name: str) -> SplitInfo:
        return next(info for info in self.splits if info.name == name)

    def drifts(self) -> list[str]:
        """One warning per split whose label rate drifts from train's beyond DRIFT_LIMIT."""
        train = self.get("train")
        out = []
        for info in self.splits:
            if info.name == "train" or info.size == 0:
                continue
            drift = label_drift(train.label_rate, info.label_rate)
            if abs(drift) > DRIFT_LIMIT:
                out.append(
                    f"label rate drifts: {info.name} {info.label_rate:.3f} vs train "
                    f"{train.label_rate:.3f} ({drift:+.0%} of the rarer class, limit "
                    f"{DRIFT_LIMIT:.0%}); a constant at the train rate is miscalibrated "
                    "there, so read AUC beside BCE"
                )
        return out

    def lines(self) -> list[str]:
        return [info.line() for info in self.splits]

    def to_dict(self) -> dict[str, Any]:
        return {
            "splits": [info.to_dict() for info in self.splits],
            "gap_windows": self.gap,
            "feature_warmup_windows": self.warmup,
            "drift_limit": DRIFT_LIMIT,
            "drift_warnings": self.drifts(),
        }


def facts_of(
    days: dict[str, np.ndarray], labels: np.ndarray, dates: pd.Index, gap: int, warmup: int = 0
) -> SplitFacts:
    return SplitFacts(tuple(split_info(n, days[n], labels, dates) for n in SPLITS), gap, warmup)


def split_facts(frame: pd.DataFrame, spec: DataSpec) -> SplitFacts:
    """The split facts of `spec` on a processed frame, without building any window."""
    labels = make_labels(frame, spec.labels).to_numpy()
    days = split_days(len(frame), spec)
    gap = gap_of(spec.split, spec.labels.horizon, spec.context_len)
    return facts_of(days, labels, frame.index, gap, feature_warmup(spec))
