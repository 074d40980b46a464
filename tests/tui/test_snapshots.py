"""The main screen at the four layouts' sizes (120x40, 80x24, 60x16, 40x12), fed the recorded event stream (fixed
timestamps, fake hardware): `pytest --snapshot-update` after an intended change."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.tui.conftest import replay_app, settled
from tests.tui.fake_link import recorded_events

N_EVENTS = len(recorded_events())


async def _settle(pilot: Pilot[object]) -> None:
    await settled(pilot, N_EVENTS)


def test_main_screen_120x40(snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, _ = replay_app()
    assert snap_compare(app, terminal_size=(120, 40), run_before=_settle)


def test_main_screen_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, _ = replay_app()
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settle)


def test_selection_drives_history_and_top_trials_120x40(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def select_third(pilot: Pilot[object]) -> None:
        await _settle(pilot)
        await pilot.press("j", "j")
        await settled(pilot, N_EVENTS)

    app, _ = replay_app()
    assert snap_compare(app, terminal_size=(120, 40), run_before=select_third)


def test_small_terminal_60x16(snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, _ = replay_app()
    assert snap_compare(app, terminal_size=(60, 16), run_before=_settle)


def test_tiny_terminal_40x12(snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, _ = replay_app()
    assert snap_compare(app, terminal_size=(40, 12), run_before=_settle)
