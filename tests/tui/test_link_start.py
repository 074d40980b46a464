"""Front-ends opened at the same moment on a stopped campaign share one engine (a REAL
engine on configs/tiny.toml): one starts it, the others wait on the campaign's start
lock and attach. Each used to start its own; all but one were refused by the engine's
lock ("another engine is running this campaign") and showed the crash screen."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine import protocol as p
from hpotui.link import EngineLink
from tests.tui.test_app_engine import WAIT_S, kill_engine, tiny  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


async def first_event(link: EngineLink) -> p.Event | None:
    while True:
        event = await link.next_event()
        if event is None or not isinstance(event, p.LogLine):
            return event


async def test_three_front_ends_opened_at_once_share_one_engine(tiny: Path) -> None:  # noqa: F811
    links: list[EngineLink] = []
    pids: set[int] = set()
    try:
        opened = await asyncio.wait_for(
            asyncio.gather(*(EngineLink.open(tiny) for _ in range(3))), WAIT_S
        )
        links = [link for link in opened if isinstance(link, EngineLink)]
        firsts = [await asyncio.wait_for(first_event(link), WAIT_S) for link in links]
        pids = {e.pid for e in firsts if isinstance(e, p.Hello)}
        errors = [e.message for e in firsts if isinstance(e, p.ErrorRaised)]
        assert not errors, errors
        assert all(isinstance(e, p.Hello) for e in firsts), firsts
        assert len(pids) == 1  # one engine
        assert sorted(link.attached for link in links) == [False, True, True]
    finally:
        for link in links:
            await link.close()
        for pid in pids:
            kill_engine(pid)
