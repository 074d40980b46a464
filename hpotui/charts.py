"""The one adapter between hpotui and its plotting widget (textual-plotext).

Widgets describe *what* to plot as `Series`; `Chart.show()` turns that into plotext calls
and redraws only when the description changed, so a chart costs nothing on ticks where
its data did not move. No other module draws a chart.

A chart never hides or mislabels a point:
- the title and the legend (each series' mark in its colour, then its label) are the
  chart's first line(s), above the plot: plotext's own legend is never drawn, because it
  sits inside the plot, over the data;
- y ticks sit on the rows whose value they name (`chart_ticks.row_ticks`), x ticks are
  whole numbers on an axis that counts (`Figure.xint`) and named values inside a range
  fitted to the data on a log axis;
- marks are drawn last, over lines, so a line never covers a point; scatter series are
  never thinned (only lines, which a terminal cell cannot show finer anyway).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from plotext._dict import color_codes
from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual_plotext import PlotextPlot

from hpotui.chart_ticks import int_ticks, log_range, log_ticks, row_ticks, short

Kind = Literal["line", "scatter", "step"]
MARKS = {"dot": "•"}  # plotext marker names and the character they draw
LINE_MARK = "─"


@dataclass(frozen=True)
class Series:
    """One line, staircase or set of marks. A "step" series is a staircase through its
    points: flat from each point to the next x, then straight down (or up) to its y."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    kind: Kind = "line"
    color: str = "default"  # a plotext colour name (plotext._dict.color_codes)
    marker: str = "dot"  # scatter only: a plotext marker name or one character

    @property
    def mark(self) -> str:
        """The character this series is drawn with (the legend shows the same)."""
        if self.kind == "scatter":
            return MARKS.get(self.marker, self.marker[:1])
        return LINE_MARK

    @property
    def style(self) -> Style:
        code = color_codes.get(self.color)
        return Style() if code is None else Style(color=Color.from_ansi(code))


@dataclass(frozen=True)
class Figure:
    series: tuple[Series, ...]
    title: str = ""
    xlabel: str = ""
    xlog: bool = False
    xint: bool = False  # the x axis counts things (epochs, trials): whole-number ticks
    empty: str = "no data yet"
    ylim: tuple[float, float] | None = None  # fixed y range (e.g. 0-100 %)

    def legend(self) -> list[Text]:
        """Each labelled series' entry: its mark in its colour, then its label."""
        return [Text.assemble((s.mark, s.style), f" {s.label}") for s in self.series if s.label]


class Chart(PlotextPlot):
    """A plotext plot fed with `Figure`s, its title and legend on the line(s) above."""

    DEFAULT_CSS = """
    Chart { width: 1fr; height: 1fr; min-height: 5; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._figure: Figure | None = None
        self._built_for: tuple[int, int] | None = None  # the size the figure was built at
        self._header: list[Text] = []
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
        width, height = self.size.width, self.size.height
        if self._figure is not None and self._built_for != (width, height):
            self._built_for = (width, height)
            self._header = header_lines(self._figure, width)
            self._build(self._figure, width, max(1, height - len(self._header)))
        plot_height = max(1, height - len(self._header))
        self._plot.plotsize(width, plot_height)
        self._plot._set_size(width, plot_height)  # as textual-plotext does (its issue 5)
        self._plot.theme(self._get_plotext_theme_name(self.app.theme))
        plot = Text.from_ansi(self._plot.build())
        return Text("\n").join([*self._header, plot]) if self._header else plot

    def _build(self, figure: Figure, width: int, height: int) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.xlabel(figure.xlabel)
        drawn = [_clean(s, figure.xlog) for s in figure.series]
        drawn = [_thin(s, max(40, 2 * width)) for s in drawn if s.x]
        if not drawn:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            plt.xticks([])
            plt.yticks([])
            plt.text(figure.empty, 0.5, 0.5, alignment="center")
            return
        ys = [y for s in drawn for y in s.y]
        low_y, high_y = figure.ylim if figure.ylim is not None else _padded(min(ys), max(ys))
        plt.ylim(low_y, high_y)
        values, labels = row_ticks(low_y, high_y, height - 3 - bool(figure.xlabel))
        plt.yticks(values, labels)
        columns = max(1, width - 2 - max((len(label) for label in labels), default=0))
        if figure.xlog:
            # log10(x) on a linear axis with ticks named in data units: plotext's own
            # log scale widens the range to whole decades and mishandles ticks
            xs = [x for s in drawn for x in s.x]
            low, high = log_range(min(xs), max(xs))
            plt.xlim(low, high)
            ticks = log_ticks(10.0**low, 10.0**high, columns)
            plt.xticks([math.log10(t) for t in ticks], [short(t) for t in ticks])
            drawn = [_log_x(s) for s in drawn]
        else:
            xs = [x for s in drawn for x in s.x]
            low, high = _padded(min(xs), max(xs))
            plt.xlim(low, high)  # every mark inside the plot area
            if figure.xint:
                ticks_int = int_ticks(low, high, columns)
                plt.xticks([float(t) for t in ticks_int], [str(t) for t in ticks_int])
        # lines first, marks over them: a line never hides a point
        for s in sorted(drawn, key=lambda s: s.kind == "scatter"):
            if s.kind == "scatter":
                plt.scatter(list(s.x), list(s.y), color=s.color, marker=s.marker)
            elif s.kind == "step":
                _staircase(plt, s)
            else:
                plt.plot(list(s.x), list(s.y), color=s.color, marker="braille")


def header_lines(figure: Figure, width: int) -> list[Text]:
    """The title, then the legend's entries, packed into as few lines of `width` as they
    fit (an entry is never split or cut; a title too long is cut)."""
    lines: list[Text] = []
    if figure.title:
        title = Text(figure.title, style="bold")
        title.truncate(width, overflow="ellipsis")
        lines.append(title)
    gap = "   " if lines else ""
    for entry in figure.legend():
        if lines and len(lines[-1]) + len(gap) + len(entry) <= width:
            lines[-1] = Text.assemble(lines[-1], gap, entry)
        else:
            lines.append(entry)
        gap = "  "
    return lines


def _staircase(plt: Any, s: Series) -> None:
    """Flat from each point to the next x, then a vertical to the next y: a best-so-far
    drawn as what it is, a value that holds until a better one replaces it."""
    points = list(zip(s.x, s.y, strict=True))
    for (_, y0), (x1, y1) in itertools.pairwise(points):
        if y1 != y0:
            plt.plot([x1, x1], [y0, y1], color=s.color, marker="│")
    for (x0, y0), (x1, _) in itertools.pairwise(points):
        plt.plot([x0, x1], [y0, y0], color=s.color, marker=LINE_MARK)
    if len(points) == 1:
        plt.scatter([points[0][0]], [points[0][1]], color=s.color, marker=LINE_MARK)


def _padded(low: float, high: float) -> tuple[float, float]:
    """A range that holds [low, high] and is never empty."""
    if high > low:
        return low, high
    pad = abs(low) * 0.05 or 0.5
    return low - pad, high + pad


def _log_x(series: Series) -> Series:
    return replace(series, x=tuple(math.log10(x) for x in series.x))


def _thin(series: Series, limit: int) -> Series:
    """A line of at most `limit` points, evenly strided, the last one kept: a terminal
    cell cannot show more, and plotext's cost grows with the number of points. Marks
    and staircases are never thinned: every point stays on the chart."""
    n = len(series.x)
    if n <= limit or series.kind != "line":
        return series
    keep = sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})
    return replace(series, x=tuple(series.x[i] for i in keep), y=tuple(series.y[i] for i in keep))


def _clean(series: Series, xlog: bool) -> Series:
    """Drop points plotext cannot draw (NaN, inf, and x <= 0 on a log axis)."""
    points = [
        (x, y)
        for x, y in zip(series.x, series.y, strict=False)
        if math.isfinite(x) and math.isfinite(y) and (x > 0 or not xlog)
    ]
    return replace(series, x=tuple(p[0] for p in points), y=tuple(p[1] for p in points))


def figure(
    series: Sequence[Series],
    *,
    title: str = "",
    xlabel: str = "",
    xlog: bool = False,
    xint: bool = False,
    empty: str = "no data yet",
    ylim: tuple[float, float] | None = None,
) -> Figure:
    return Figure(tuple(series), title, xlabel, xlog, xint, empty, ylim)
