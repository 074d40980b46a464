"""The plotting adapter: what it drops, thins, and when it redraws."""

from __future__ import annotations

import math

from textual.app import App, ComposeResult

from hpotui.charts import Chart, Series, _clean, _decades, _thin, figure


def test_points_plotext_cannot_draw_are_dropped() -> None:
    s = Series("s", (0.0, 1.0, math.nan, 100.0), (1.0, math.inf, 2.0, 3.0))
    assert _clean(s, xlog=False).x == (0.0, 100.0)
    assert _clean(s, xlog=True).x == (100.0,)  # x <= 0 has no place on a log axis


def test_long_series_are_thinned_keeping_both_ends() -> None:
    n = 10_000
    s = Series("s", tuple(float(i) for i in range(n)), tuple(float(i) for i in range(n)))
    thin = _thin(s, 80)
    assert len(thin.x) == 80 and thin.x[0] == 0.0 and thin.x[-1] == n - 1
    assert _thin(thin, 80) == thin


def test_log_axis_ticks_are_the_decades_around_the_data() -> None:
    assert _decades([math.log10(17_500), math.log10(85_000)]) == (4, 5)
    assert _decades([6.2]) == (6, 7)


async def test_an_unchanged_figure_is_not_redrawn() -> None:
    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield Chart(id="c")

    app = One()
    async with app.run_test(size=(60, 20)) as pilot:
        chart = app.query_one(Chart)
        fig = figure([Series("a", (1.0, 2.0), (3.0, 4.0))], title="t")
        chart.show(fig)
        chart.show(figure([Series("a", (1.0, 2.0), (3.0, 4.0))], title="t"))
        assert chart.draws == 1
        chart.show(figure([Series("a", (1.0, 2.0), (3.0, 5.0))], title="t"))
        assert chart.draws == 2
        await pilot.pause()


def _plot_rows(chart: Chart) -> tuple[list[str], list[tuple[int, float]]]:
    """The rendered chart's data rows (between the frame's top and bottom lines, top
    first) and its y labels as (row index, value)."""
    lines = chart.render().plain.splitlines()
    top = next(i for i, line in enumerate(lines) if "┌" in line)
    bottom = next(i for i, line in enumerate(lines) if "└" in line)
    rows = lines[top + 1 : bottom]
    labels = [(i, float(row.split("┤")[0])) for i, row in enumerate(rows) if "┤" in row]
    return rows, labels


def _row_of(rows: list[str], column: int) -> list[int]:
    return [i for i, row in enumerate(rows) if len(row) > column and row[column] == "x"]


async def test_each_mark_sits_on_the_row_its_axis_label_names() -> None:
    """Known points (x markers) at each chart kind and at sizes with fewer rows than
    plotext's own ticks (where it drew seven labels on six rows): every label is on
    the row of its value, labels are evenly spaced, every mark inside the frame."""

    class Sized(App[None]):
        def __init__(self, width: int, height: int) -> None:
            super().__init__()
            self.dims = (width, height)

        def compose(self) -> ComposeResult:
            chart = Chart(id="c")
            chart.styles.width, chart.styles.height = self.dims
            yield chart

    ys = (0.6473, 0.65, 0.70, 0.7623, 0.68)  # no legend label: its marker is no point
    kinds = {
        "loss": figure(
            [Series("", (1.0, 2.0, 3.0, 4.0, 5.0), ys, "scatter", marker="x")],
            title="t",
            xlabel="epoch",
        ),
        "history": figure(
            [Series("", (0.0, 1.0, 2.0, 3.0, 4.0), ys, "scatter", marker="x")],
            title="t",
            xlabel="trial",
        ),
        "scaling": figure(
            [Series("", (2e4, 5e4, 1e5, 2e5, 5e5), ys, "scatter", marker="x")],
            title="t",
            xlabel="parameters (log)",
            xlog=True,
        ),
    }
    for width, height in ((40, 12), (38, 11), (60, 20)):
        for name, fig in kinds.items():
            app = Sized(width, height)
            async with app.run_test(size=(width + 2, height + 2)) as pilot:
                chart = app.query_one(Chart)
                chart.show(fig)
                await pilot.pause()
                rows, labels = _plot_rows(chart)
                where = f"{name} at {width}x{height}"
                assert len(labels) >= 2 and len({i for i, _ in labels}) == len(labels), where
                # one value per row, evenly spaced: row i shows top - i * step
                (i0, v0), (i1, v1) = labels[0], labels[-1]
                step = (v0 - v1) / (i1 - i0)
                for i, v in labels:
                    assert abs(v - (v0 - (i - i0) * step)) <= 0.0051, (where, labels)
                assert labels[0][0] == 0 and labels[-1][0] == len(rows) - 1, where
                # each mark is on the row whose value is nearest its own: marks left to
                # right are the points in x order
                marks = sorted(
                    (col, i) for i, row in enumerate(rows) for col, c in enumerate(row) if c == "x"
                )
                assert len(marks) == len(ys), (where, rows)
                for (_, row), y in zip(marks, ys, strict=True):
                    shown = v0 - (row - i0) * step  # the value of the row the mark is on
                    assert abs(shown - y) <= step / 2 + 1e-9, (where, y, shown, rows)
                assert "x" in rows[0] and "x" in rows[-1], where  # max on top, min at bottom
                for row in rows:  # every mark inside the frame: nothing past its right edge
                    inner = row.split("┤" if "┤" in row else "│", 1)[-1]
                    assert inner.rstrip().endswith("│"), (where, row)
                    assert "x" not in inner.rstrip()[-1:], (where, row)


def test_the_hardware_history_is_a_labelled_sparkline_on_a_fixed_scale() -> None:
    from hpotui.widgets.hardware_panel import sparkline

    assert sparkline([0.0, 50.0, 100.0], 10) == " ▄█"  # 0 %, half, full: not rescaled
    assert sparkline([float(i) for i in range(100)], 5) == "█████"  # the newest 5: 95-99 %
    assert sparkline([100.0, 0.0], 1) == " "  # the newest sample is at the right
