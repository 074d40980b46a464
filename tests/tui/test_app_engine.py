"""Keys pressed in the dashboard reach a REAL engine subprocess (configs/tiny.toml in a
temp workspace) and change its queue; quitting leaves it running; re-running hpotui
re-attaches; a killed engine shows the crash screen and restarts."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from engine.paths import SOURCE_ROOT
from engine.protocol import Reply
from hpotui.app import HpotuiApp, create_app
from hpotui.screens.add_experiments import AddExperimentsScreen
from hpotui.screens.confirm import ConfirmScreen
from hpotui.screens.crashed import EngineCrashedScreen
from hpotui.screens.quit import QuitScreen
from hpotui.widgets.status_bar import StatusBar
from tests.tui.conftest import until

# Every wait is on a condition; WAIT_S is only the safety net of one step, generous
# because other work on a 2-core machine can slow the engine and the app several times
# (a start includes pre-flight building the embedded dataset on a cold workspace).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
WAIT_S = 240.0


@pytest.fixture
def tiny(workspace: Path) -> Path:
    (workspace / "configs").mkdir(exist_ok=True)
    return Path(shutil.copy(SOURCE_ROOT / "configs" / "tiny.toml", workspace / "configs"))


def order(app: HpotuiApp) -> list[str]:
    return [e.name for e in app.state.queue]


def row_state(app: HpotuiApp, name: str) -> str:
    row = app.state.experiment(name)
    assert row is not None
    return row.state


async def press(pilot: Pilot[object], *keys: str, timeout: float = WAIT_S) -> Reply:
    """Press `keys`; the engine's Reply to the command they sent."""
    app = pilot.app
    assert isinstance(app, HpotuiApp)
    sent = len(app.sent)
    await pilot.press(*keys)
    await until(pilot, lambda: len(app.sent) > sent, timeout)
    (command,) = app.sent[sent:]
    await until(pilot, lambda: command.id in app.state.replies, timeout)
    return app.state.replies[command.id]


async def select(pilot: Pilot[object], name: str) -> None:
    app = pilot.app
    assert isinstance(app, HpotuiApp)
    await pilot.press("home")
    for _ in range(len(app.state.queue)):
        if app.main.selected == name:
            return
        await pilot.press("j")
    assert app.main.selected == name


def kill_engine(pid: int) -> None:
    """Tests end the engines they started (the app itself never does). Only while `pid`
    is still an engine: once an engine is gone and reaped, its pid can be another
    process's (the other test worker's, say)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return  # gone
    if b"engine" not in command:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our child, now a zombie
            return False
    return True


async def test_keys_steer_the_real_engine_queue(tiny: Path) -> None:
    app = create_app(tiny)
    pid = 0
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: len(app.state.queue) == 2, WAIT_S)
            assert app.state.hello is not None
            pid = app.state.hello.pid
            assert order(app) == ["10K_h1", "30K_h1"]

            reply = await press(pilot, "P")  # pause all: nothing new starts meanwhile
            assert reply.ok, reply.message
            await until(pilot, lambda: app.state.paused_all, WAIT_S)

            await select(pilot, "30K_h1")
            assert (await press(pilot, "K")).ok  # move up
            await until(pilot, lambda: order(app) == ["30K_h1", "10K_h1"], WAIT_S)
            assert app.main.selected == "30K_h1"  # the selection follows the moved row
            assert (await press(pilot, "J")).ok  # move down
            await until(pilot, lambda: order(app) == ["10K_h1", "30K_h1"], WAIT_S)
            assert (await press(pilot, "t")).ok  # to the top
            await until(pilot, lambda: order(app) == ["30K_h1", "10K_h1"], WAIT_S)

            assert (await press(pilot, "p")).ok  # pause the selected experiment
            await until(pilot, lambda: row_state(app, "30K_h1") == "paused", WAIT_S)
            assert (await press(pilot, "p")).ok  # and resume it
            await until(pilot, lambda: row_state(app, "30K_h1") != "paused", WAIT_S)

            assert (await press(pilot, "s")).ok  # skip
            await until(pilot, lambda: row_state(app, "30K_h1") == "skipped", WAIT_S)
            assert (await press(pilot, "s")).ok  # s again: un-skip, queued with its trials
            await until(pilot, lambda: row_state(app, "30K_h1") == "queued", WAIT_S)
            assert (await press(pilot, "s")).ok
            await until(pilot, lambda: row_state(app, "30K_h1") == "skipped", WAIT_S)

            await pilot.press("r")  # re-run asks first
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), WAIT_S)
            reply = await press(pilot, "y")
            assert reply.ok, reply.message
            await until(pilot, lambda: row_state(app, "30K_h1") == "queued", WAIT_S)

            workers = app.state.workers
            assert (await press(pilot, "plus")).ok
            await until(pilot, lambda: app.state.workers == workers + 1, WAIT_S)
            assert (await press(pilot, "minus")).ok
            await until(pilot, lambda: app.state.workers == workers, WAIT_S)

            more = tiny.with_name("more.toml")  # the same campaign at horizon 3
            more.write_text(tiny.read_text().replace("horizons = [1]", "horizons = [3]"))
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, AddExperimentsScreen), WAIT_S)
            app.screen.query_one(Input).value = str(more)
            reply = await press(pilot, "enter")
            assert reply.ok, reply.message
            await until(pilot, lambda: {"10K_h3", "30K_h3"} <= set(order(app)), WAIT_S)

            assert (await press(pilot, "P")).ok  # resume all
            await until(pilot, lambda: not app.state.paused_all, WAIT_S)

            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitScreen), WAIT_S)
            await pilot.press("s", "enter")  # stop after the current trials
            await until(pilot, lambda: not app.is_running, WAIT_S)
        assert "stops after its current trials" in app.exit_message
        # Stop after current trials: the engine ends by itself, nothing is killed.
        deadline = time.monotonic() + WAIT_S
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(pid), "the engine did not stop after its current trials"
    finally:
        if pid:
            kill_engine(pid)


async def test_leave_running_reattach_and_restart_after_a_crash(tiny: Path) -> None:
    pids: list[int] = []
    try:
        first = create_app(tiny)
        async with first.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: len(first.state.queue) == 2, WAIT_S)
            assert first.state.hello is not None
            pids.append(first.state.hello.pid)
            assert (await press(pilot, "P")).ok  # keep the test campaign idle
            await pilot.press("q")
            await until(pilot, lambda: isinstance(first.screen, QuitScreen), WAIT_S)
            await pilot.press("l", "enter")  # leave running in the background
            await until(pilot, lambda: not first.is_running, WAIT_S)
        assert "keeps running" in first.exit_message
        assert alive(pids[0]), "quitting must not stop a campaign left running"

        second = create_app(tiny)
        async with second.run_test(size=(120, 40)) as pilot:
            status = second.main.query_one(StatusBar)
            await until(pilot, lambda: status.link_state == "attached", WAIT_S)
            await until(pilot, lambda: len(second.state.queue) == 2, WAIT_S)
            assert second.state.paused_all  # the state the first session left
            # history: the first session's log is replayed from events.jsonl
            assert any(
                "paus" in e.message.lower() or e.source == "engine" for e in second.state.log
            )

            kill_engine(pids[0])  # the engine dies under the dashboard
            await until(pilot, lambda: isinstance(second.screen, EngineCrashedScreen), WAIT_S)
            assert status.link_state == "down"
            await pilot.press("r")  # restart: a fresh engine resumes the campaign
            await until(pilot, lambda: status.link_state == "running", WAIT_S)
            await until(
                pilot,
                lambda: second.state.hello is not None and second.state.hello.pid != pids[0],
                WAIT_S,
            )
            assert second.state.hello is not None
            pids.append(second.state.hello.pid)
            await until(pilot, lambda: len(second.state.queue) == 2, WAIT_S)
            await second.leave(stop=True)
    finally:
        for pid in pids:
            kill_engine(pid)


async def test_a_config_error_is_shown_in_the_app_not_as_a_traceback(tiny: Path) -> None:
    bad = tiny.with_name("bad.toml")
    bad.write_text(tiny.read_text().replace("horizons = [1]", "horizons = [0]"))
    app = create_app(bad)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, EngineCrashedScreen), WAIT_S)
        screen = app.screen
        assert isinstance(screen, EngineCrashedScreen)
        assert screen.returncode == 2
        assert any("grid.horizons" in line for line in screen.stderr)
        assert not any("Traceback" in line for line in screen.stderr)
        await pilot.press("q")
    assert app.return_code == 1
