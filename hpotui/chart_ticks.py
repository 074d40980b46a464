"""Where a chart's ticks go and what they say: y labels on the rows they name, whole
numbers on an axis that counts (epochs, trial numbers), log-axis ticks a reader can name
(10k, 20k, 50k) inside a range fitted to the data. Pure functions: hpotui/charts.py
places what they return."""

from __future__ import annotations

import math

NICE = (1, 2, 5)  # the mantissas of ticks a reader can name: 1, 2, 5, 10, 20, 50, ...


def row_ticks(low: float, high: float, rows: int, most: int = 6) -> tuple[list[float], list[str]]:
    """Y ticks that each sit exactly on a row of a `rows`-row plot of [low, high]: row r
    (0 at the bottom) shows low + (high - low) * r / (rows - 1), so a tick's label is
    the value of the row it is drawn on. At most `most` ticks, the bottom and top rows
    included, no two on one row; labels with the fewest decimals that tell them apart
    and are true to a row (rounded by less than a row's step: "0.76" on a row of 0.755
    would put a point of 0.695 a row away from where the labels say)."""
    if rows < 2:
        return [], []
    n = min(most, rows)
    picked = sorted({round(i * (rows - 1) / (n - 1)) for i in range(n)})
    values = [low + (high - low) * r / (rows - 1) for r in picked]
    step = (high - low) / (rows - 1)
    first = 1 if step <= 0 else max(1, math.ceil(-math.log10(step)))
    for digits in range(min(first, 7), 8):
        labels = [f"{v:.{digits}f}" for v in values]
        if len(set(labels)) == len(labels):
            break
    return values, labels


def int_ticks(low: float, high: float, columns: int) -> list[int]:
    """Whole-number ticks inside [low, high], a step of 1, 2, 5, 10, 20, ... chosen so
    that the labels (as wide as the largest, plus a gap) fit `columns`."""
    first, last = math.ceil(low - 1e-9), math.floor(high + 1e-9)
    if last < first:
        return []
    width = max(len(str(first)), len(str(last))) + 2
    most = max(1, columns // width)
    for step in _nice_steps():
        start = math.ceil(first / step) * step
        ticks = list(range(start, last + 1, step))
        if len(ticks) <= most:
            return ticks or [first]
    return [first]  # not reached: the steps grow without bound


def log_ticks(low: float, high: float, columns: int) -> list[float]:
    """Ticks for a log axis over [low, high] (data units, > 0): the 1-2-5 values inside
    the range, thinned to what fits `columns`; the ends of the range when none of them
    falls inside (a narrow range, e.g. 7.7k..8.5k)."""
    if low <= 0 or high < low:
        return []
    candidates = [
        m * 10.0**k
        for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        for m in NICE
        if low <= m * 10.0**k <= high
    ]
    most = max(2, columns // 6)
    for keep in ((1, 2, 5), (1, 5), (1,)):
        picked = [c for c in candidates if _mantissa(c) in keep]
        if 2 <= len(picked) <= most:
            return picked
    decades = [c for c in candidates if _mantissa(c) == 1]
    if len(decades) > most:  # many decades: every k-th
        k = math.ceil(len(decades) / most)
        return decades[::k]
    if len(candidates) >= 2 and len(candidates) <= most:
        return candidates
    return [low, high] if high > low else [low]


def log_range(low: float, high: float) -> tuple[float, float]:
    """The log10 limits of a log axis holding [low, high]: the data plus a margin of 5%
    of its span (at least 0.05 of a decade), never whole decades of empty paper."""
    a, b = math.log10(low), math.log10(high)
    pad = max(0.05, 0.05 * (b - a))
    return a - pad, b + pad


def short(number: float) -> str:
    """20000 -> 20k, 1.5e6 -> 1.5M: a tick label in data units."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if number >= size:
            return f"{number / size:.3g}{unit}"
    return f"{number:.3g}"


def _nice_steps() -> list[int]:
    return [m * 10**k for k in range(12) for m in NICE]


def _mantissa(value: float) -> int:
    return round(value / 10.0 ** math.floor(math.log10(value) + 1e-9))
