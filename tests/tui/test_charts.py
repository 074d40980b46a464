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
