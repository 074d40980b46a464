"""Every size of terminal works (120x40, 80x24, 60x16, 40x12): `? help` and `q quit` in
every footer, never cut mid-word; dialogs and the crash screen with every choice and
their keys on screen; the top-trials list in view at 120x40 with 12 experiments."""

from __future__ import annotations

import io

from rich.console import Console
from textual.widgets import Button
from textual.widgets._footer import FooterKey

from engine.protocol import ExperimentStatus, ExperimentTrials, QueueSnapshot, TrialRecord
from hpotui.screens.crashed import EngineCrashedScreen
from hpotui.screens.quit import QuitScreen
from hpotui.widgets.best_table import BestArchitectures
from hpotui.widgets.key_footer import KeyFooter
from tests.tui.conftest import replay_app, settled, until
from tests.tui.fake_link import ScriptedLink, recorded_events

SIZES = ((120, 40), (80, 24), (60, 16), (40, 12))
N = len(recorded_events())


def footer_keys(app) -> list[FooterKey]:  # type: ignore[no-untyped-def]
    return list(app.screen.query_one(KeyFooter).query(FooterKey))


def inside(widget, width: int, height: int) -> bool:  # type: ignore[no-untyped-def]
    r = widget.region
    return (
        r.width > 0
        and r.height > 0
        and r.x >= 0
        and r.y >= 0
        and r.right <= width
        and r.bottom <= height
    )


async def test_help_and_quit_are_in_every_footer_at_every_size() -> None:
    for width, height in SIZES:
        await _footers(width, height)


async def _footers(width: int, height: int) -> None:
    app, _ = replay_app()
    async with app.run_test(size=(width, height)) as pilot:
        await settled(pilot, N)
        await until(pilot, lambda: bool(footer_keys(app)))
        keys = footer_keys(app)
        actions = [k.action for k in keys]
        assert "help" in actions and "quit" in actions, (width, actions)
        for key in keys:  # every key whole and on screen
            assert inside(key, width, height), (width, key.action, key.region)
            text = key.render().plain
            assert key.description in text and key.key_display in text
        await pilot.press("enter")  # the trial table's footer: help and back
        await pilot.pause(0.3)
        actions = [k.action for k in footer_keys(app)]
        assert "help" in actions and "close" in actions, (width, actions)


async def test_the_quit_dialog_and_the_crash_screen_fit_40x12() -> None:
    for width, height in ((40, 12), (60, 16), (80, 24)):
        await _dialogs(width, height)


async def _dialogs(width: int, height: int) -> None:
    app, links = replay_app()
    async with app.run_test(size=(width, height)) as pilot:
        await settled(pilot, N)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.pause(0.2)
        buttons = list(app.screen.query(Button))
        assert len(buttons) == 3
        for button in buttons:  # "Leave running" was off-screen at 40x12
            assert inside(button, width, height), (width, button.id, button.region)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, QuitScreen))
        stderr = [f"a long line of the engine's stderr {i} " * 2 for i in range(25)]
        links[0].end(exit_code=3, stderr=stderr)
        await until(pilot, lambda: isinstance(app.screen, EngineCrashedScreen))
        await pilot.pause(0.2)
        keys = app.screen.query_one("#crash-keys")
        assert inside(keys, width, height), (width, keys.region)


def twelve_experiments() -> list:  # type: ignore[type-arg]
    rows, events = [], []
    for i in range(12):
        name = f"{10 * (i // 3 + 1)}K_h{i % 3 + 1}"
        rows.append(ExperimentStatus(name, i, "10K", i % 3 + 1, "t", "done", 6, n_complete=6))
        trials = [
            TrialRecord(
                n,
                "complete",
                0.6 + 0.01 * n,
                architecture={"d_model": 16},
                n_params=10_000,
                curve=[[1.0, 0.7, 0.6]],
            )
            for n in range(6)
        ]
        events.append(ExperimentTrials(experiment=name, study_name=name, trials=trials))
    return [*recorded_events()[:1], *events, QueueSnapshot(experiments=rows, workers=2)]


async def test_the_top_trials_stay_in_view_at_120x40_with_12_experiments() -> None:
    events = twelve_experiments()
    app, _ = replay_app(ScriptedLink(events))
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, len(events))
        await until(pilot, lambda: app.main.selected is not None)
        panel = app.main.query_one(BestArchitectures)
        console = Console(width=panel.size.width, file=io.StringIO(), record=True)
        console.print(panel.content)
        lines = console.export_text().splitlines()
        assert len(lines) <= panel.size.height, lines  # nothing cut off at the bottom
        title = next(i for i, line in enumerate(lines) if line.startswith("top trials of"))
        assert lines[title + 2].startswith("#0"), lines  # the best trial, after the header
        assert any("more (select one to see it)" in line for line in lines)
