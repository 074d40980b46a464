"""The one adapter between hpotui and its plotting widget (textual-plotext).

Widgets describe *what* to plot as `Series`; `Chart.show()` turns that into plotext calls
and redraws only when the description changed, so a chart costs nothing on ticks where
its data did not move. No other module draws a chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from textual_plotext import PlotextPlot


@dataclass(frozen=True)
class Series:
    """One line or set of markers."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    kind: Literal["line", "scatter"] = "line"
    color: str | None = None
    marker: str | None = None


@dataclass(frozen=True)
class Figure:
    series: tuple[Series, ...]
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    xlog: bool = False
    empty: str = "no data yet"
    ylim: tuple[float, float] | None = None  # fixed y range (e.g. 0-100 %)
    bare: bool = False  # no title, labels, x ticks or legend: a strip chart


class Chart(PlotextPlot):
    """A plotext plot fed with `Figure`s."""

    DEFAULT_CSS = """
    Chart { width: 1fr; height: 1fr; min-height: 5; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._figure: Figure | None = None
        self._built_for: tuple[int, int] | None = None  # the size the figure was built at
        self.draws = 0  # how many times the figure was rebuilt (benchmarks, tests)

    @property
    def figure(self) -> Figure | None:
        return self._figure

    def show(self, figure: Figure) -> None:
        """Draw `figure`; a no-op when it equals the one already shown."""
        if figure == self._figure:
            return
        self._figure = figure
        self._built_for = None
        self.draws += 1
        self.refresh()

    def render(self) -> Any:
        # The y ticks are placed on the rows plotext draws at this size: build the
        # figure for the size it is rendered at (again after a resize).
        size = (self.size.width, self.size.height)
        if self._figure is not None and self._built_for != size:
            self._built_for = size
            self._build(self._figure, *size)
        return super().render()

    def _build(self, figure: Figure, width: int, height: int) -> None:
        plt = self.plt
        plt.clear_figure()
        if figure.bare:
            plt.frame(False)
            plt.xticks([])
            plt.yticks([])
        else:
            plt.title(figure.title)
            plt.xlabel(figure.xlabel)
            plt.ylabel(figure.ylabel)
        limit = max(40, 2 * width)
        drawn = [_thin(s, limit) for s in (_clean(s, figure.xlog) for s in figure.series) if s.x]
        if not drawn:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            plt.text(figure.empty, 0.5, 0.5, alignment="center")
            return
        if figure.xlog:
            # Plot log10(x) on a linear axis with ticks named in data units: plotext's
            # own log scale mishandles limits and ticks.
            drawn = [_log_x(s) for s in drawn]
            low, high = _decades([x for s in drawn for x in s.x])
            plt.xlim(low - 0.1, high + 0.1)
            ticks = [float(t) for t in range(low, high + 1)]
            plt.xticks(ticks, [_short(10.0**t) for t in ticks])
        else:
            xs = [x for s in drawn for x in s.x]
            plt.xlim(*_padded(min(xs), max(xs)))  # every mark inside the plot area
        ys = [y for s in drawn for y in s.y]
        low_y, high_y = figure.ylim if figure.ylim is not None else _padded(min(ys), max(ys))
        plt.ylim(low_y, high_y)
        if not figure.bare:
            rows = height - 3 - bool(figure.title) - bool(figure.xlabel)  # frame, x ticks
            values, labels = row_ticks(low_y, high_y, rows)
            plt.yticks(values, labels)
        for s in drawn:
            draw = plt.scatter if s.kind == "scatter" else plt.plot
            label = None if figure.bare or not s.label else s.label
            draw(list(s.x), list(s.y), label=label, color=s.color, marker=s.marker)


def _padded(low: float, high: float) -> tuple[float, float]:
    """A range that holds [low, high] and is never empty."""
    if high > low:
        return low, high
    pad = abs(low) * 0.05 or 0.5
    return low - pad, high + pad


def row_ticks(low: float, high: float, rows: int, most: int = 6) -> tuple[list[float], list[str]]:
    """Y ticks that each sit exactly on a row of a `rows`-row plot of [low, high]: row r
    (0 at the bottom) shows low + (high - low) * r / (rows - 1), so a tick's label is
    the value of the row it is drawn on. At most `most` ticks, the bottom and top rows
    included, no two on one row; labels with the fewest decimals that tell them apart."""
    if rows < 2:
        return [], []
    n = min(most, rows)
    picked = sorted({round(i * (rows - 1) / (n - 1)) for i in range(n)})
    values = [low + (high - low) * r / (rows - 1) for r in picked]
    for digits in range(1, 8):
        labels = [f"{v:.{digits}f}" for v in values]
        if len(set(labels)) == len(labels):
            break
    return values, labels


def _decades(logs: list[float]) -> tuple[int, int]:
    """The powers of ten around the data: log-axis ticks a reader can name (1M, 10M)."""
    low = math.floor(min(logs))
    return low, max(low + 1, math.ceil(max(logs)))


def _log_x(series: Series) -> Series:
    return Series(
        series.label,
        tuple(math.log10(x) for x in series.x),
        series.y,
        series.kind,
        series.color,
        series.marker,
    )


def _short(number: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if number >= size:
            return f"{number / size:g}{unit}"
    return f"{number:g}"


def _thin(series: Series, limit: int) -> Series:
    """At most `limit` points, evenly strided, the last one kept: a terminal cell cannot
    show more, and plotext's cost grows with the number of points."""
    n = len(series.x)
    if n <= limit:
        return series
    keep = sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})
    return Series(
        series.label,
        tuple(series.x[i] for i in keep),
        tuple(series.y[i] for i in keep),
        series.kind,
        series.color,
        series.marker,
    )


def _clean(series: Series, xlog: bool) -> Series:
    """Drop points plotext cannot draw (NaN, inf, and x <= 0 on a log axis)."""
    points = [
        (x, y)
        for x, y in zip(series.x, series.y, strict=False)
        if math.isfinite(x) and math.isfinite(y) and (x > 0 or not xlog)
    ]
    return Series(
        series.label,
        tuple(p[0] for p in points),
        tuple(p[1] for p in points),
        series.kind,
        series.color,
        series.marker,
    )


def figure(
    series: Sequence[Series],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    xlog: bool = False,
    empty: str = "no data yet",
    ylim: tuple[float, float] | None = None,
    bare: bool = False,
) -> Figure:
    return Figure(tuple(series), title, xlabel, ylabel, xlog, empty, ylim, bare)
