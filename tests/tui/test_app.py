"""The dashboard's own behaviour over a scripted engine link: crash screen and restart,
quitting without losing the campaign, redraw coalescing, help, trial table, palette.
(Commands reaching a real engine are tested in test_app_engine.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from textual.widgets import DataTable, Label

from engine.protocol import EpochEnded, LogLine, PauseAll, SetWorkers, Stop, TrialStarted
from hpotui.screens.crashed import EngineCrashedScreen
from hpotui.screens.help import HelpScreen
from hpotui.screens.quit import QuitScreen
from hpotui.screens.trial_table import TrialTableScreen
from hpotui.widgets.log_view import LogView
from hpotui.widgets.loss_chart import LossChart
from hpotui.widgets.queue_table import QueueTable
from hpotui.widgets.status_bar import StatusBar
from tests.tui.conftest import replay_app, settled, until
from tests.tui.fake_link import ScriptedLink, recorded_events

N = len(recorded_events())


async def test_engine_crash_shows_status_and_stderr_then_restarts() -> None:
    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        links[0].end(exit_code=3, stderr=["loading dataset", "RuntimeError: disk full"])
        await until(pilot, lambda: isinstance(app.screen, EngineCrashedScreen))
        screen = app.screen
        assert isinstance(screen, EngineCrashedScreen)
        assert screen.returncode == 3 and screen.stderr[-1] == "RuntimeError: disk full"
        assert app.main.query_one(StatusBar).link_state == "down"
        await pilot.press("r")
        await until(pilot, lambda: len(links) == 2 and app.link is links[1])
        assert not isinstance(app.screen, EngineCrashedScreen)
        await until(pilot, lambda: app.main.query_one(StatusBar).link_state == "running")
        # the campaign shown before the crash is still there (it lives in storage)
        assert app.state.experiment("2M_h1") is not None


async def test_clean_engine_exit_is_not_a_crash() -> None:
    from engine.protocol import Bye

    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        links[0].push(Bye(reason="campaign finished", exit_code=0))
        links[0].end(exit_code=0)
        await until(pilot, lambda: app.main.query_one(StatusBar).link_state == "finished")
        assert not isinstance(app.screen, EngineCrashedScreen)


async def test_quit_leave_running_detaches_without_stopping() -> None:
    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("l")  # selects only: one stray letter decides nothing
        await pilot.pause(0.2)
        assert isinstance(app.screen, QuitScreen) and not links[0].detached
        await pilot.press("enter")
        await until(pilot, lambda: links[0].detached)
    assert not any(isinstance(c, Stop) for c in links[0].sent)
    assert not links[0].closed
    assert "keeps running" in app.exit_message and "4242" in app.exit_message


async def test_quit_stop_after_current_sends_stop_then_detaches() -> None:
    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("enter")  # nothing selected yet: Enter alone decides nothing
        await pilot.pause(0.2)
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("l", "left", "enter")  # the arrows move the selection
        await until(pilot, lambda: links[0].detached)
    stops = [c for c in links[0].sent if isinstance(c, Stop)]
    assert [s.mode for s in stops] == ["after_current"]
    assert "stops after its current trials" in app.exit_message


async def test_quit_dialog_cancel_keeps_the_app() -> None:
    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, QuitScreen))
        assert app.is_running and not links[0].detached


async def test_hangup_leaves_the_campaign_running() -> None:
    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        # a closed terminal: a real SIGHUP to this process (guarded: unhandled, it kills)
        assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN)
        os.kill(os.getpid(), signal.SIGHUP)
        await until(pilot, lambda: links[0].detached)
    assert not any(isinstance(c, Stop) for c in links[0].sent)


async def test_a_thousand_events_are_drawn_in_a_few_frames() -> None:
    link = ScriptedLink(recorded_events())
    app, _ = replay_app(link)
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        frames, draws = app.frames, app.main.query_one(LossChart).draws
        link.push(
            TrialStarted(
                experiment="2M_h3",
                trial=9,
                params={},
                architecture={},
                n_params=1,
                worker="w",
                host="h",
            )
        )
        for epoch in range(1, 1001):
            link.push(
                EpochEnded(
                    experiment="2M_h3",
                    trial=9,
                    epoch=epoch,
                    train_loss=1.0,
                    val_loss=1.0 / epoch,
                    elapsed_s=epoch,
                )
            )
        await settled(pilot, N + 1001)
        assert app.frames - frames <= 10  # coalesced, not one redraw per event
        assert app.main.query_one(LossChart).draws - draws <= 10
        trial = app.state.focus_trial("2M_h3")
        assert trial is not None and len(trial.epochs) == 1000


async def test_help_lists_every_key_and_palette_has_every_action() -> None:
    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = dict(app.screen.keys)  # type: ignore[attr-defined]
        for key in ("shift+up / K", "t", "p", "P", "s", "r", "a", "+", "-", "enter", "l", "q"):
            assert key in shown
        await pilot.press("s", "p", "P", "t")  # behind a dialog, campaign keys do nothing
        await pilot.pause(0.2)
        assert [c.type for c in links[0].sent] == ["snapshot"]
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert any("Pause / resume all" in t for t in titles)
        assert any("Re-run" in t for t in titles)


async def test_keys_send_commands_for_the_selected_experiment() -> None:
    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        await pilot.press("j", "P", "plus")
        await until(pilot, lambda: len(links[0].sent) >= 3)
        kinds = [type(c) for c in links[0].sent]
        assert PauseAll in kinds and SetWorkers in kinds
        workers = next(c for c in links[0].sent if isinstance(c, SetWorkers))
        assert workers.workers == 3  # the recording runs 2 workers


async def test_trial_table_sorts_and_filters() -> None:
    app, _ = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TrialTableScreen))
        screen = app.screen
        assert isinstance(screen, TrialTableScreen) and screen.experiment == "2M_h1"
        table = screen.query_one(DataTable)
        assert table.row_count == 8
        await pilot.press("f", "f")  # all -> running -> complete
        assert screen.filter == "complete"
        assert {t.state for t in screen.rows()} == {"complete"}
        await pilot.press("o", "o")  # trial -> state -> value
        values = [t.value for t in screen.rows()]
        assert screen.sort_column == "value" and values == sorted(values)  # type: ignore[type-var]
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, TrialTableScreen))


async def test_log_filter_hides_lower_levels() -> None:
    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        await pilot.press("l")
        log = app.main.query_one(LogView)
        assert app.focused is log
        await pilot.press("f", "f")  # info -> warning -> error
        assert log.min_level == "error"
        links[0].push(LogLine(level="warning", message="hidden"))
        links[0].push(LogLine(level="error", message="shown"))
        await settled(pilot, N + 2)
        messages = [e.message for e in log.entries]
        assert "shown" in messages and "hidden" not in messages
        assert all(e.level == "error" for e in log.entries)
        assert log.visible_entries()[-1].message == "shown"


async def test_w_wraps_long_log_lines_so_they_read_whole() -> None:
    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        reason = "refused: " + " ".join(f"word{i}" for i in range(40)) + " END"
        links[0].push(LogLine(level="warning", message=reason))
        await settled(pilot, N + 1)
        await pilot.press("l")
        log = app.main.query_one(LogView)
        assert "END" not in log.render().plain  # cut to the panel's width
        await pilot.press("w")
        shown = log.render().plain
        assert "END" in shown and "word0" in shown  # the whole reason, newest at the bottom
        assert shown.rstrip().endswith("END")
        await pilot.press("w")
        assert "END" not in log.render().plain


async def test_tiny_terminal_survives_every_key() -> None:
    app, _ = replay_app()
    async with app.run_test(size=(40, 12)) as pilot:
        await settled(pilot, N)
        for key in ("j", "k", "l", "escape", "question_mark", "escape", "enter", "escape"):
            await pilot.press(key)
        await pilot.resize_terminal(30, 8)
        await pilot.pause(0.2)
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.2)
        assert app.is_running


async def test_reattached_link_replays_history_first() -> None:
    events = recorded_events()
    link = ScriptedLink(events[-5:], attached=True)
    app, _ = replay_app(link)
    app._history = lambda _link: events[:-5]  # what events.jsonl holds
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        assert app.main.query_one(StatusBar).link_state == "attached"
        assert app.main.query_one(QueueTable).row_count == 6
        assert app.state.best_trial("2M_h1") is not None


async def test_selection_survives_a_reorder() -> None:
    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        await pilot.press("j", "j")
        queue = app.main.query_one(QueueTable)
        assert queue.selected == "2M_h5"
        snapshot = next(e for e in reversed(recorded_events()) if e.type == "queue")
        rows = list(reversed(snapshot.experiments))  # type: ignore[attr-defined]
        for i, row in enumerate(rows):
            row.position = i
        snapshot.experiments = rows  # type: ignore[attr-defined]
        links[0].push(snapshot)
        await settled(pilot, N + 1)
        await asyncio.sleep(0.1)
        await pilot.pause()
        assert queue.selected == "2M_h5"
        assert queue.cursor_row == [r.name for r in rows].index("2M_h5")


async def test_an_internal_error_leaves_no_traceback_and_the_engine_running(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, links = replay_app()

    def broken() -> None:
        raise RuntimeError("a bug in a panel")

    async def run() -> None:
        await app.run_async(headless=True, size=(120, 40))

    task = asyncio.ensure_future(run())
    while app.state.n_events < N:
        await asyncio.sleep(0.05)
    app.call_later(broken)
    await asyncio.wait_for(task, 10)
    assert app.return_code == 1
    assert links[0].detached and not links[0].closed  # the campaign keeps running
    assert "internal error: RuntimeError: a bug in a panel" in app.exit_message
    crash_log = workspace / "outputs" / "hpotui-crash.log"
    assert "Traceback" in crash_log.read_text()
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err


async def test_command_palette_runs_a_campaign_action() -> None:
    app, links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        await pilot.press("ctrl+p")
        await pilot.press(*"pause all")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: any(isinstance(c, PauseAll) for c in links[0].sent))


async def test_an_event_the_app_cannot_show_is_reported_and_reading_goes_on() -> None:
    from engine.protocol import HardwareSampled

    link = ScriptedLink(recorded_events())
    app, _ = replay_app(link)
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        link.push(HardwareSampled(sample={"cpu_percent_per_core": "not a list"}))
        link.push(LogLine(level="info", message="still reading"))
        await until(pilot, lambda: any(e.message == "still reading" for e in app.state.log))
        assert any("could not show a hardware event" in e.message for e in app.state.log)
        assert app.is_running


def test_trial_table_shows_the_experiments_splits_and_drift() -> None:
    from engine.protocol import ExperimentStatus
    from hpotui.screens.trial_table import split_text

    status = ExperimentStatus("2M_h1", 0, "2M", 1, "threshold_1pct", "running", 10)
    assert split_text(status) == "splits: not read yet"
    status.splits = [
        {
            "name": "train",
            "size": 3220,
            "start": "2000-01-11",
            "end": "2012-10-25",
            "label_rate": 0.249,
            "blocks": 1,
        },
        {
            "name": "test",
            "size": 716,
            "start": "2016-02-26",
            "end": "2018-12-28",
            "label_rate": None,
            "blocks": 1,
        },
    ]
    status.split_warnings = ["label rate drifts: test 0.119 vs train 0.249"]
    lines = split_text(status).splitlines()
    assert lines[0] == "train   3220 windows  2000-01-11 .. 2012-10-25  label rate 0.249"
    assert (
        lines[1].endswith("label rate -")
        and lines[2] == "! label rate drifts: test 0.119 vs train 0.249"
    )


async def test_trial_table_screen_draws_the_split_lines() -> None:
    app, _ = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        status = app.state.experiment("2M_h1")
        assert status is not None
        status.splits = [
            {
                "name": "val",
                "size": 716,
                "start": "2013-01-28",
                "end": "2015-11-27",
                "label_rate": 0.151,
                "blocks": 1,
            }
        ]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TrialTableScreen))
        label = app.screen.query_one("#trials-splits", Label)
        assert "val      716 windows  2013-01-28 .. 2015-11-27" in str(label.render())


async def test_the_trial_table_opened_during_a_burst_of_events_draws_its_rows() -> None:
    """Enter on the queue right after a re-run: the burst of events that follows redraws
    the trial table while it mounts. Rows drawn into it before its columns existed raised
    `ValueError('More values provided than there are columns.')`, and the table,
    remembered as drawn, stayed empty."""
    for _ in range(5):
        await _open_trials_during_a_burst()


async def _open_trials_during_a_burst() -> None:
    app, _links = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)

        def burst() -> None:  # what the redraw of a burst of trial events does
            app._dirty.add("trials")
            app._draw()

        timer = app.set_interval(0.001, burst)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TrialTableScreen))
        await pilot.pause(0.2)
        timer.stop()
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == len(app.state.trials_of("2M_h1")))
        assert not [e for e in app.state.log if "columns" in e.message]


async def test_a_key_that_needs_the_engine_while_it_starts_says_so_without_asking() -> None:
    """`r` asked its question, then answered "the engine is not connected"."""
    from hpotui.app import create_app
    from hpotui.screens.confirm import ConfirmScreen
    from tests.tui.conftest import CAMPAIGN

    gate = asyncio.Event()
    first = ScriptedLink(recorded_events())

    async def factory() -> ScriptedLink:
        if factory.calls:  # type: ignore[attr-defined]
            await gate.wait()  # the restarted engine takes its time
            return ScriptedLink(recorded_events()[:3])
        factory.calls += 1  # type: ignore[attr-defined]
        return first

    factory.calls = 0  # type: ignore[attr-defined]
    app = create_app(CAMPAIGN, link_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        first.end(exit_code=3, stderr=["boom"])
        await until(pilot, lambda: isinstance(app.screen, EngineCrashedScreen))
        await pilot.press("r")  # restart: the engine is starting
        await until(pilot, lambda: app.main.query_one(StatusBar).link_state == "starting")
        sent = len(app.sent)  # the first engine's snapshot request
        await pilot.press("r")  # re-run the selected experiment
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
        assert app.command_blocker(starts_engine=True) is not None
        await pilot.press("p")
        await pilot.pause(0.2)
        assert len(app.sent) == sent
        gate.set()
        await until(pilot, lambda: app.main.query_one(StatusBar).link_state == "running")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
