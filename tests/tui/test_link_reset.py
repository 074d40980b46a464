"""A dashboard attached to an engine that dies with a command of ours unread: the
socket is reset, and every later read raises the same error. The link says so once
and ends, so the app shows the crash screen; answering each read with an event spun
the front-end until the machine ran out of memory (seen in CI: a test worker killed
with 23 GB)."""

from __future__ import annotations

import asyncio
import socket

from engine import protocol as p
from hpotui.link import EngineLink
from hpotui.state import ERRORS_KEPT, CampaignState


async def test_a_reset_connection_is_one_error_then_the_end() -> None:
    ours, engine = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    link = EngineLink(reader, writer, attached=True)
    await link.send(p.PauseAll(id=link.new_id()))
    engine.close()  # killed, our command unread: the kernel resets our side

    first = await asyncio.wait_for(link.next_event(), 60)
    assert isinstance(first, p.ErrorRaised) and "engine stream broken" in first.message
    assert await asyncio.wait_for(link.next_event(), 60) is None  # the end, not a loop
    assert await asyncio.wait_for(link.next_event(), 60) is None
    await link.close()


def test_error_events_kept_for_the_crash_screen_are_bounded() -> None:
    state = CampaignState()
    for n in range(10 * ERRORS_KEPT):
        state.apply(p.ErrorRaised(message=f"error {n}"))
    assert len(state.errors) == ERRORS_KEPT
    assert list(state.errors)[-1] == f"error {10 * ERRORS_KEPT - 1}"
