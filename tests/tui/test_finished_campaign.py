"""A finished campaign is alive: the dashboard opens it from its storage (a real Optuna
journal written as the workers write one: tests/tui/stored_campaign.py) without starting
an engine, samples the hardware itself, shows the selected experiment's best trial's
curves and any trial's from the trial table, says why a key that needs an engine does
nothing, and starts the engine for one that does (re-run, with a REAL engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from textual.widgets import DataTable

from engine.protocol import Rerun
from engine.storage.view_cache import CACHE_FILE
from hpotui.app import create_app, has_engine
from hpotui.screens.confirm import ConfirmScreen
from hpotui.screens.trial_curves import TrialCurvesScreen
from hpotui.screens.trial_table import TrialTableScreen
from hpotui.widgets.history_chart import HistoryChart
from hpotui.widgets.loss_chart import LossChart
from hpotui.widgets.status_bar import StatusBar
from tests.tui.conftest import until
from tests.tui.stored_campaign import Stored, write_stored_campaign
from tests.tui.test_app_engine import WAIT_S, kill_engine


@pytest.fixture
def stored(workspace: Path) -> Stored:
    return write_stored_campaign(workspace, trials=6, epochs=3, prune_every=3, fail_every=5)


def engines_running(folder: Path) -> list[int]:
    """Engine processes of this campaign (by its pid file, or any live child of ours)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "engine" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.Error:
            continue  # gone meanwhile
    pid_file = folder / "engine.pid"
    if pid_file.exists():
        found.append(int(pid_file.read_text()))
    return found


def loaded(app, stored: Stored) -> bool:  # type: ignore[no-untyped-def]
    return (
        bool(app.state.queue) and sum(len(t) for t in app.state.trials.values()) == stored.n_trials
    )


async def test_a_finished_campaign_opens_from_storage_with_no_engine(stored: Stored) -> None:
    folder = stored.journal.parent
    app = create_app(stored.config)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: loaded(app, stored) and app.main.selected is not None, WAIT_S)
        assert app.link is not None and not has_engine(app.link)
        assert app.main.query_one(StatusBar).link_state == "finished"
        assert app.state.hello is None and app.state.campaign == stored.campaign
        assert not engines_running(folder)
        # the front-end samples the hardware itself
        await until(pilot, lambda: app.state.hardware.last is not None, WAIT_S)
        # the loss panel follows the selection: the selected experiment's best trial
        selected = app.main.selected
        assert selected is not None
        best = app.state.best_trial(selected)
        assert best is not None
        await until(pilot, lambda: app.main.query_one(LossChart).figure is not None)
        loss = app.main.query_one(LossChart).figure
        assert loss is not None and loss.title == f"{selected} #{best.number} (complete, best)"
        assert loss.series[1].y == tuple(v for _, _, v in best.epochs)
        history = app.main.query_one(HistoryChart).figure
        assert history is not None
        pruned = next(s for s in history.series if s.label.endswith("pruned"))
        assert len(pruned.x) == 2  # trials 1 and 4 of 6, at their last reported value
        await pilot.press("j")  # another experiment: its best trial
        await until(pilot, lambda: app.main.selected != selected)
        other = app.state.best_trial(app.main.selected or "")
        assert other is not None
        await until(
            pilot,
            lambda: (app.main.query_one(LossChart).figure or loss).title.startswith(
                f"{app.main.selected} #{other.number}"
            ),
        )

        # a key that needs an engine and makes no sense here says why, starts nothing
        await pilot.press("p")
        await until(pilot, lambda: any("no engine runs" in e.message for e in app.state.log))
        assert app.sent == [] and not engines_running(folder)

        # Enter: the trial table; Enter on a trial: its curves; back: the loss panel shows it
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TrialTableScreen))
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 6)
        await pilot.press("down", "down", "enter")  # trial #2 (sorted by number)
        await until(pilot, lambda: isinstance(app.screen, TrialCurvesScreen))
        screen = app.screen
        assert isinstance(screen, TrialCurvesScreen) and screen.number == 2
        chart = screen.query_one(LossChart)
        assert chart.figure is not None and chart.figure.title.startswith(
            f"{app.main.selected} #2 ("
        )
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TrialTableScreen))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main)
        await until(
            pilot,
            lambda: (app.main.query_one(LossChart).figure or loss).title.startswith(
                f"{app.main.selected} #2 ("
            ),
        )

        await pilot.press("q")  # nothing runs: no question, the app ends
        await until(pilot, lambda: not app.is_running)
    assert not engines_running(folder)
    assert (folder / CACHE_FILE).exists()  # the view is kept for the next open


def test_opening_a_finished_campaign_imports_neither_torch_nor_an_engine(stored: Stored) -> None:
    """In a fresh interpreter, as `hpotui CONFIG` runs: the first open replays the journal
    (Optuna, no torch) and keeps the view; the second reads the kept view alone."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from hpotui.app import create_app\n"
        "from hpotui.stored import open_finished\n"
        f"found = open_finished(Path({str(stored.config)!r}), None)\n"
        "found is not None and found.past()  # once drawn: the view is kept, the log read\n"
        "print(json.dumps({'found': found is not None, 'torch': 'torch' in sys.modules,"
        " 'optuna': 'optuna' in sys.modules}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def run() -> dict[str, bool]:
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        result: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
        return result

    assert run() == {"found": True, "torch": False, "optuna": True}  # replayed, then kept
    assert run() == {"found": True, "torch": False, "optuna": False}  # the kept view


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_rerun_on_a_finished_campaign_starts_the_engine_with_it(stored: Stored) -> None:
    folder = stored.journal.parent
    app = create_app(stored.config)
    pid = 0
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(
                pilot, lambda: loaded(app, stored) and app.main.selected is not None, WAIT_S
            )
            name = app.main.selected
            assert name is not None and app.state.best_trial(name) is not None
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), WAIT_S)
            await pilot.press("y")
            await until(pilot, lambda: any(isinstance(c, Rerun) for c in app.sent), WAIT_S)
            command = next(c for c in app.sent if isinstance(c, Rerun))
            assert command.experiment == name
            await until(pilot, lambda: command.id in app.state.replies, WAIT_S)
            reply = app.state.replies[command.id]
            assert reply.ok, reply.message
            assert app.state.hello is not None and has_engine(app.link)
            pid = app.state.hello.pid
            row = app.state.experiment(name)
            assert row is not None and row.study_name.endswith(".r2")
            # the archived study's trials and best are gone from the view
            await until(pilot, lambda: app.state.best_trial(name) is None, WAIT_S)
            assert any(f"starting the engine to re-run {name}" in e.message for e in app.state.log)
            await app.leave(stop=True)
    finally:
        kill_engine(pid)
        for other in engines_running(folder):
            kill_engine(other)
