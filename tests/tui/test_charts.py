"""The charts tell the truth, checked on what they render: every point's cell holds its
series' mark in its series' colour, at the row its y label names and the column its x
ticks name; the legend is above the plot (never over data) and says each series' mark
and colour; ticks count in whole numbers where the axis counts; best-so-far is a
staircase; pruned trials are drawn at their last reported value; Scaling has one point
per experiment on a log axis fitted to the data."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

from rich.text import Text
from textual.app import App, ComposeResult

from engine.protocol import ExperimentStatus, ExperimentTrials, QueueSnapshot, TrialRecord
from hpotui.chart_ticks import int_ticks, log_range, log_ticks
from hpotui.charts import Chart, Series, _clean, _thin, figure
from hpotui.state import CampaignState
from hpotui.widgets.history_chart import HistoryChart
from hpotui.widgets.loss_chart import LossChart
from hpotui.widgets.scaling_chart import ScalingChart

SIZES = ((40, 12), (60, 20), (100, 30))


# ---------------------------------------------------------------------------- reading


@dataclass
class Rendered:
    text: str
    header: list[str]  # the lines above the frame: title, legend
    header_text: list[Text]
    rows: list[Text]  # the plot's rows inside the frame, top first
    left: int  # the column of the frame's left edge in a line
    y_rows: list[tuple[int, float]]  # (row, value) of each y label
    x_cols: list[tuple[int, float]]  # (plot column, value) of each x tick

    def cell(self, row: int, col: int) -> tuple[str, str | None]:
        """(character, colour name) of plot cell (row, col)."""
        line = self.rows[row]
        at = self.left + 1 + col
        char = line.plain[at]
        colour = None
        for span in line.spans:
            style = span.style
            if span.start <= at < span.end and not isinstance(style, str) and style.color:
                colour = style.color.name
        return char, colour

    def rows_of(self, y: float) -> list[int]:
        """The rows whose value, as the labels name it, is nearest `y`: one, or two when
        `y` is half-way between rows to within the labels' own rounding."""
        (r0, v0), (r1, v1) = self.y_rows[0], self.y_rows[-1]
        step = (v0 - v1) / (r1 - r0)
        eps = 10.0**-self.decimals
        return [r for r in range(len(self.rows)) if abs(v0 - (r - r0) * step - y) <= step / 2 + eps]

    def row_of(self, y: float) -> int:
        rows = self.rows_of(y)
        return rows[len(rows) // 2]

    @property
    def decimals(self) -> int:
        return max(len(str(v).split(".")[1]) if "." in str(v) else 0 for _, v in self.y_rows)

    def col_of(self, x: float, log: bool = False) -> int:
        (c0, x0), (c1, x1) = self.x_cols[0], self.x_cols[-1]
        if log:  # ticks named in data units on a log axis
            x, x0, x1 = math.log10(x), math.log10(x0), math.log10(x1)
        return round(c0 + (x - x0) * (c1 - c0) / (x1 - x0))


def read(chart: Chart) -> Rendered:
    rendered = chart.render()
    lines = rendered.split("\n")
    plain = [line.plain for line in lines]
    top = next((i for i, line in enumerate(plain) if "┌" in line), None)
    if top is None:  # no frame (an empty chart)
        return Rendered(rendered.plain, plain, lines, [], 0, [], [])
    bottom = next(i for i, line in enumerate(plain) if "└" in line)
    left = plain[top].index("┌")
    rows = lines[top + 1 : bottom]
    y_rows = [(i, float(r.plain[:left])) for i, r in enumerate(rows) if r.plain[left] == "┤"]
    ticks = [i - left - 1 for i, c in enumerate(plain[bottom]) if c == "┬"]
    labels = (
        [
            (m.start() + (len(m.group()) - 1) / 2, m.group())
            for m in re.finditer(r"\S+", plain[bottom + 1])
        ]
        if bottom + 1 < len(plain)
        else []
    )
    x_cols = []
    for col in ticks:
        _, label = min(labels, key=lambda lab: abs(lab[0] - (col + left + 1)))
        x_cols.append((col, _number(label)))
    return Rendered(rendered.plain, plain[:top], lines[:top], rows, left, y_rows, x_cols)


def _number(label: str) -> float:
    units = {"k": 1e3, "M": 1e6, "B": 1e9}
    if label[-1] in units:
        return float(label[:-1]) * units[label[-1]]
    return float(label)


def assert_points(shown: Rendered, series: Series, *, xlog: bool = False, where: str = "") -> None:
    """Every point of a scatter series has its mark, in its colour, in its cell."""
    colour = series.style.color.name if series.style.color else None
    width = len(shown.rows[0].plain) - shown.left - 2
    for x, y in zip(series.x, series.y, strict=True):
        col = shown.col_of(x, log=xlog)
        near = [
            shown.cell(row, c)
            for row in shown.rows_of(y)
            for c in (col - 1, col, col + 1)
            if 0 <= c < width
        ]
        assert (series.mark, colour) in near, (
            where,
            series.label,
            x,
            y,
            col,
            [r.plain for r in shown.rows],
        )


def assert_legend(shown: Rendered, series: list[Series], where: str = "") -> None:
    """Each label is above the plot, after its mark in its colour; none inside the plot."""
    header = "\n".join(shown.header)
    for s in series:
        assert s.label in header, (where, s.label, shown.header)
        for row in shown.rows:
            assert s.label not in row.plain, (where, "legend over the data", row.plain)
        entry = f"{s.mark} {s.label}"
        line = next((t for t in shown.header_text if entry in t.plain), None)
        assert line is not None, (where, entry, shown.header)
        at = line.plain.index(entry)
        styles = [
            sp.style
            for sp in line.spans
            if sp.start <= at < sp.end and not isinstance(sp.style, str)
        ]
        assert any(st.color and st.color == s.style.color for st in styles), (where, s.label)


def assert_rows_named(shown: Rendered, where: str = "") -> None:
    """y labels: one per row, evenly spaced, the first and last rows labelled."""
    rows = [r for r, _ in shown.y_rows]
    assert len(rows) >= 2 and len(set(rows)) == len(rows), where
    assert rows[0] == 0 and rows[-1] == len(shown.rows) - 1, where
    (r0, v0), (r1, v1) = shown.y_rows[0], shown.y_rows[-1]
    step = (v0 - v1) / (r1 - r0)
    for r, v in shown.y_rows:
        assert abs(v - (v0 - (r - r0) * step)) <= 10**-shown.decimals + 1e-9, (where, shown.y_rows)
        # a label is true to its row: rounded by less than half a row's step
        assert 10**-shown.decimals <= abs(step) + 1e-12, (where, shown.y_rows)


# ---------------------------------------------------------------------------- a campaign


def record(
    n: int, state: str, curve: list[float], value: float | None = None, n_params: int = 0
) -> TrialRecord:
    return TrialRecord(
        trial=n,
        state=state,
        value=value,
        architecture={"d_model": 16},
        n_params=n_params,
        curve=[[float(e + 1), v + 0.02, v] for e, v in enumerate(curve)],
        started_ts=1000.0 + n,
        duration_s=10.0,
    )


def campaign() -> CampaignState:
    """10K_h1: trials 0..11, complete ones improving in steps, pruned ones at their last
    epoch (no value), failed ones; other experiments for Scaling (7.7k..118k params)."""
    state = CampaignState()
    rows = []
    specs = [
        ("10K_h1", 1, 7_700),
        ("30K_h1", 1, 31_000),
        ("100K_h1", 1, 118_000),
        ("10K_h5", 5, 9_800),
        ("30K_h5", 5, 29_000),
        ("100K_h5", 5, 101_000),
    ]
    for i, (name, horizon, _) in enumerate(specs):
        rows.append(
            ExperimentStatus(
                name=name,
                position=i,
                budget=name.split("_")[0],
                horizon=horizon,
                task="t",
                state="done",
                n_trials=12,
                study_name=f"c.{name}",
            )
        )
    state.apply(QueueSnapshot(experiments=rows, workers=2))
    first = [
        record(0, "complete", [0.72, 0.70, 0.69], 0.69, 7_700),
        record(1, "pruned", [0.75, 0.74]),  # drawn at 0.74, its last reported value
        record(2, "complete", [0.70, 0.68, 0.67], 0.67, 7_700),
        record(3, "failed", []),
        record(4, "complete", [0.69, 0.685, 0.68], 0.68, 7_700),
        record(5, "pruned", [0.73]),
        record(6, "complete", [0.68, 0.66, 0.65], 0.65, 7_700),
        record(7, "complete", [0.70, 0.69, 0.695], 0.695, 7_700),
        record(8, "pruned", [0.71, 0.72]),
        record(9, "complete", [0.69, 0.67, 0.66], 0.66, 7_700),
        record(10, "complete", [0.66, 0.645, 0.64], 0.64, 7_700),
        record(11, "pruned", [0.76, 0.755]),
    ]
    state.apply(ExperimentTrials(experiment="10K_h1", study_name="c.10K_h1", trials=first))
    for i, (name, _, params) in enumerate(specs[1:], start=1):
        best = 0.66 - 0.008 * i
        state.apply(
            ExperimentTrials(
                experiment=name,
                study_name=f"c.{name}",
                trials=[record(0, "complete", [best + 0.02, best], best, params)],
            )
        )
    return state


class Charts(App[None]):
    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.dims = (width, height)

    def compose(self) -> ComposeResult:
        for chart in (LossChart(id="loss"), HistoryChart(id="history"), ScalingChart(id="scaling")):
            chart.styles.width, chart.styles.height = self.dims
            yield chart


async def rendered_charts(
    width: int, height: int, state: CampaignState, selected: str | None = "10K_h1"
) -> dict[str, tuple[Chart, Rendered]]:
    """Each chart and what it renders (`Rendered.text`: all of it, as text)."""
    app = Charts(width, height)
    out: dict[str, tuple[Chart, Rendered]] = {}
    async with app.run_test(size=(width + 2, 3 * height + 2)) as pilot:
        loss, history, scaling = (
            app.query_one(LossChart),
            app.query_one(HistoryChart),
            app.query_one(ScalingChart),
        )
        loss.update_from(state, selected)
        history.update_from(state, selected)
        scaling.update_from(state)
        await pilot.pause()
        for name, chart in (("loss", loss), ("history", history), ("scaling", scaling)):
            out[name] = (chart, read(chart))
    return out


# ---------------------------------------------------------------------------- tests


async def test_history_draws_every_trial_where_its_labels_say() -> None:
    state = campaign()
    for width, height in SIZES:
        where = f"history at {width}x{height}"
        chart, shown = (await rendered_charts(width, height, state))["history"]
        fig = chart.figure
        assert fig is not None
        by_label = {s.label: s for s in fig.series}
        assert set(by_label) == {"best so far", "7 complete", "4 pruned", "1 failed"}, where
        assert fig.title == "10K_h1", where
        # pruned trials at their last reported value, never dropped
        assert by_label["4 pruned"].x == (1.0, 5.0, 8.0, 11.0), where
        assert by_label["4 pruned"].y == (0.74, 0.73, 0.72, 0.755), where
        assert_rows_named(shown, where)
        assert_legend(shown, list(fig.series), where)
        for label in ("7 complete", "4 pruned", "1 failed"):
            assert_points(shown, by_label[label], where=where)
        # whole trial numbers on the x axis
        assert all(float(v).is_integer() for _, v in shown.x_cols), (where, shown.x_cols)
        # the best so far is a staircase: flat on the best's row from each improvement to
        # the next, and through to the last trial
        best = by_label["best so far"]
        assert best.x == (0.0, 2.0, 6.0, 10.0, 11.0) and best.y == (0.69, 0.67, 0.65, 0.64, 0.64)
        points = list(zip(best.x, best.y, strict=True))
        for (x0, y0), (x1, _) in itertools.pairwise(points):
            row = shown.row_of(y0)
            for col in range(shown.col_of(x0) + 1, shown.col_of(x1)):
                char, _ = shown.cell(row, col)
                assert char in "─│•x!", (where, x0, x1, row, col, shown.rows[row].plain)


async def test_loss_curves_have_whole_epochs_and_a_legend_above() -> None:
    state = campaign()
    for width, height in SIZES:
        where = f"loss at {width}x{height}"
        chart, shown = (await rendered_charts(width, height, state))["loss"]
        fig = chart.figure
        assert fig is not None
        # a finished campaign: the selected experiment's best trial's curves
        assert fig.title == "10K_h1 #10 (complete, best)", where
        assert_rows_named(shown, where)
        assert_legend(shown, list(fig.series), where)
        assert shown.x_cols and all(float(v).is_integer() for _, v in shown.x_cols), (
            where,
            shown.x_cols,
        )
        assert {v for _, v in shown.x_cols} <= {1.0, 2.0, 3.0}, where
        for s in fig.series:  # each epoch's value within a row of its label (braille lines)
            for x, y in zip(s.x, s.y, strict=True):
                row, col = shown.row_of(y), shown.col_of(x)
                cells = [
                    shown.cell(r, c)[0]
                    for r in (row - 1, row, row + 1)
                    if 0 <= r < len(shown.rows)
                    for c in (col - 1, col, col + 1)
                    if c >= 0
                ]
                assert any(c.strip() for c in cells), (where, s.label, x, y)


async def test_scaling_is_one_point_per_experiment_by_horizon_on_a_fitted_log_axis() -> None:
    state = campaign()
    for width, height in SIZES:
        where = f"scaling at {width}x{height}"
        chart, shown = (await rendered_charts(width, height, state))["scaling"]
        fig = chart.figure
        assert fig is not None
        assert [s.label for s in fig.series] == ["h1", "h5"], where
        assert all(s.kind == "scatter" for s in fig.series), where
        assert [len(s.x) for s in fig.series] == [3, 3], where  # one point per experiment
        assert_rows_named(shown, where)
        assert_legend(shown, list(fig.series), where)
        for s in fig.series:  # each point in its horizon's colour: no label on a wrong row
            assert_points(shown, s, xlog=True, where=where)
        # the axis holds the data (7.7k..118k), not whole decades around it
        values = [v for _, v in shown.x_cols]
        assert values and min(values) >= 7_000 and max(values) <= 130_000, (where, values)


async def test_an_empty_chart_has_no_ticks_only_its_message() -> None:
    state = CampaignState()
    charts = await rendered_charts(60, 20, state, selected=None)
    for name, (_, shown) in charts.items():
        assert not re.search(r"\d\.\d", shown.text), (name, shown.text)  # no 0.25, 0.50
        assert not shown.y_rows and not shown.x_cols, name
    assert "no completed experiment yet" in charts["scaling"][1].text


def test_ticks_count_in_whole_numbers_and_fit_the_width() -> None:
    assert int_ticks(0, 49, 60) == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]
    assert int_ticks(1, 3, 40) == [1, 2, 3]
    assert int_ticks(0.95, 1.05, 40) == [1]
    ticks = int_ticks(0, 599, 20)
    assert all(isinstance(t, int) for t in ticks) and len(ticks) * 5 <= 20


def test_log_ticks_fit_the_data() -> None:
    low, high = log_range(7_700, 118_000)
    assert 6_500 < 10**low < 7_700 and 118_000 < 10**high < 140_000  # not 1k..1M
    assert log_ticks(10**low, 10**high, 60) == [10_000, 20_000, 50_000, 100_000]
    assert log_ticks(7_700, 8_500, 60) == [7_700, 8_500]  # no 1-2-5 value inside


def test_points_plotext_cannot_draw_are_dropped() -> None:
    s = Series("s", (0.0, 1.0, math.nan, 100.0), (1.0, math.inf, 2.0, 3.0))
    assert _clean(s, xlog=False).x == (0.0, 100.0)
    assert _clean(s, xlog=True).x == (100.0,)  # x <= 0 has no place on a log axis


def test_lines_are_thinned_marks_never() -> None:
    n = 10_000
    xs = tuple(float(i) for i in range(n))
    thin = _thin(Series("s", xs, xs), 80)
    assert len(thin.x) == 80 and thin.x[0] == 0.0 and thin.x[-1] == n - 1
    assert _thin(thin, 80) == thin
    marks = Series("m", xs, xs, "scatter")
    assert _thin(marks, 80) == marks  # every trial stays on the chart


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


def test_the_hardware_history_is_a_labelled_sparkline_on_a_fixed_scale() -> None:
    from hpotui.widgets.hardware_panel import sparkline

    assert sparkline([0.0, 50.0, 100.0], 10) == " ▄█"  # 0 %, half, full: not rescaled
    assert sparkline([float(i) for i in range(100)], 5) == "█████"  # the newest 5: 95-99 %
    assert sparkline([100.0, 0.0], 1) == " "  # the newest sample is at the right
