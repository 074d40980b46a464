"""The dashboard shows the whole campaign from the storage, whoever started the engine:
after the engine is killed and restarted, and when a finished campaign is opened (no engine), every
panel and the trial table show what the live app showed (a REAL engine on
configs/tiny.toml, the real app under Pilot)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable

from hpotui.app import HpotuiApp, create_app, has_engine
from hpotui.screens.trial_table import COLUMNS, TrialTableScreen
from hpotui.widgets.best_table import BestArchitectures
from hpotui.widgets.history_chart import HistoryChart
from hpotui.widgets.loss_chart import LossChart
from hpotui.widgets.scaling_chart import ScalingChart
from tests.tui.conftest import until
from tests.tui.test_app_engine import WAIT_S, alive, kill_engine, press, tiny  # noqa: F401

# a whole (tiny) campaign runs, twice opened: more than the default 300 s on a loaded box
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
RUN_S = 900.0  # the whole tiny campaign, on a shared and loaded machine
DURATION = COLUMNS.index("duration")


def finished(app: HpotuiApp) -> int:
    return sum(e.n_complete + e.n_pruned + e.n_failed for e in app.state.queue)


def running(app: HpotuiApp) -> int:
    return sum(e.n_running for e in app.state.queue)


def best_text(app: HpotuiApp) -> str:
    """The Best architectures panel as text (its tables rendered at the panel's width)."""
    panel = app.main.query_one(BestArchitectures)
    console = Console(width=panel.size.width, file=io.StringIO(), record=True)
    console.print(panel.content)
    return console.export_text()


async def view(pilot: Pilot[object], app: HpotuiApp) -> dict[str, Any]:
    """What the screen shows: best architectures and top trials (text), the three
    charts' figures, and every experiment's trial table (cells as text)."""
    await pilot.pause(0.2)
    shown: dict[str, Any] = {
        "best": best_text(app),
        "history": app.main.query_one(HistoryChart).figure,
        "scaling": app.main.query_one(ScalingChart).figure,
        "loss": app.main.query_one(LossChart).figure,
    }
    for experiment in [e.name for e in app.state.queue]:
        app.push_screen(TrialTableScreen(experiment, app.state))
        await until(pilot, lambda: isinstance(app.screen, TrialTableScreen), WAIT_S)
        await pilot.pause(0.1)
        table = app.screen.query_one(DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        shown[f"table {experiment}"] = rows
        app.pop_screen()
        await until(pilot, lambda: not isinstance(app.screen, TrialTableScreen), WAIT_S)
    return shown


def durations(app: HpotuiApp) -> dict[tuple[str, int], float | None]:
    return {(e, n): t.duration_s for e, ts in app.state.trials.items() for n, t in ts.items()}


def assert_same_view(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["best"] == before["best"]
    assert "-" * 3 not in after["best"].splitlines()[1]  # a best row, not "- - -"
    assert after["history"] == before["history"]
    assert after["scaling"] == before["scaling"]
    assert after["loss"] == before["loss"]
    assert after["loss"].series[0].x, "the finished trial's train curve is drawn"
    tables = [key for key in before if key.startswith("table")]
    assert any(before[key] for key in tables)
    for key in tables:
        if key.startswith("table"):
            assert len(after[key]) == len(before[key]), key
            for live, stored in zip(before[key], after[key], strict=True):
                # durations: the live event's clock and the storage's may differ by ms
                assert live[:DURATION] + live[DURATION + 1 :] == (
                    stored[:DURATION] + stored[DURATION + 1 :]
                )


def assert_same_durations(before: dict[Any, Any], after: dict[Any, Any]) -> None:
    for key, seconds in before.items():
        if seconds is not None:
            assert after[key] == pytest.approx(seconds, abs=0.5), key


async def test_a_restarted_engine_shows_what_the_live_app_showed(tiny: Path) -> None:  # noqa: F811
    app = create_app(tiny)
    pid = 0
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.state.hello is not None, WAIT_S)
            assert app.state.hello is not None
            pid = app.state.hello.pid
            await until(pilot, lambda: finished(app) >= 2, RUN_S)
            assert (await press(pilot, "P")).ok  # pause all: the part run so far stays
            await until(pilot, lambda: app.state.paused_all and running(app) == 0, RUN_S)
            before = await view(pilot, app)
            before_durations = durations(app)
            kill_engine(pid)
            await until(pilot, lambda: not alive(pid), WAIT_S)
            app.exit()
        reopened = create_app(tiny)
        async with reopened.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: reopened.state.hello is not None, WAIT_S)
            assert reopened.state.hello is not None
            pid = reopened.state.hello.pid
            assert reopened.state.hello.resumed
            await until(pilot, lambda: reopened.state.trials and reopened.state.queue, WAIT_S)
            after = await view(pilot, reopened)
            assert_same_view(before, after)
            assert_same_durations(before_durations, durations(reopened))
            await reopened.leave(stop=True)
    finally:
        kill_engine(pid)


async def test_a_finished_campaign_opens_with_everything_it_showed_live(tiny: Path) -> None:  # noqa: F811
    app = create_app(tiny)
    pid = 0
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.state.hello is not None, WAIT_S)
            assert app.state.hello is not None
            pid = app.state.hello.pid
            await until(pilot, lambda: app.state.bye is not None, RUN_S)
            assert all(e.state == "done" for e in app.state.queue)
            before = await view(pilot, app)
            before_durations = durations(app)
            app.exit()
        reopened = create_app(tiny)
        async with reopened.run_test(size=(120, 40)) as pilot:
            # no engine: the finished campaign is read from its storage by the dashboard
            await until(pilot, lambda: len(reopened.state.trials) == 2, WAIT_S)
            assert reopened.state.hello is None and not has_engine(reopened.link)
            after = await view(pilot, reopened)
            assert_same_view(before, after)
            assert_same_durations(before_durations, durations(reopened))
            assert len(after["table 10K_h1"]) == 3
            assert after["history"].series[0].x  # a non-empty history
    finally:
        kill_engine(pid)
