"""Helpers for the dashboard's tests: replay apps over a scripted link, polling waits."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from hpotui.app import HpotuiApp, create_app
from tests.tui.fake_link import ScriptedLink, recorded_events

CAMPAIGN = Path(__file__).parent / "data" / "campaign.toml"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests on a fresh event loop (no asyncio plugin is installed)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Log timestamps are local time: pin the zone so snapshots hold everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def replay_app(link: ScriptedLink | None = None) -> tuple[HpotuiApp, list[ScriptedLink]]:
    """An app whose engine is a scripted link fed the recorded stream; every (re)start of
    the engine gets the next link from the returned list."""
    links: list[ScriptedLink] = [link or ScriptedLink(recorded_events())]

    async def factory() -> ScriptedLink:
        if factory.calls >= len(links):  # type: ignore[attr-defined]
            links.append(ScriptedLink(recorded_events()[:3]))
        factory.calls += 1  # type: ignore[attr-defined]
        return links[factory.calls - 1]  # type: ignore[attr-defined]

    factory.calls = 0  # type: ignore[attr-defined]
    return create_app(CAMPAIGN, link_factory=factory), links


async def until(pilot: Pilot[object], condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` while the app runs; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {_named(condition)}")
        await pilot.pause(0.05)


def _named(condition: Callable[[], bool]) -> str:
    """The condition's source line (which wait timed out), else its repr."""
    try:
        return inspect.getsource(condition).strip()
    except (OSError, TypeError):
        return repr(condition)


async def settled(pilot: Pilot[object], n_events: int) -> None:
    """All `n_events` folded and drawn (the redraw timer has fired)."""
    app = pilot.app
    assert isinstance(app, HpotuiApp)
    await until(pilot, lambda: app.state.n_events >= n_events)
    await asyncio.sleep(0.15)
    await pilot.pause()
