"""A scripted stand-in for `hpotui.link.EngineLink`, for tests of the app's own logic
(snapshots, crash screen, redraw coalescing). Tests of commands use the real engine."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from engine.protocol import Command, Event, decode_event

RECORDED = Path(__file__).parent / "data" / "recorded.jsonl"


def recorded_events() -> list[Event]:
    return [decode_event(line) for line in RECORDED.read_text(encoding="utf-8").splitlines()]


class ScriptedLink:
    """Replays `events`, then waits for more (`push`) until `end()`; records commands."""

    def __init__(self, events: list[Event] | None = None, *, attached: bool = False) -> None:
        self.attached = attached
        self.sent: list[Command] = []
        self.detached = False
        self.closed = False
        self.exit_code: int | None = None
        self.stderr: list[str] = []
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._ids = itertools.count(1)
        for event in events or []:
            self._queue.put_nowait(event)

    def push(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def end(self, exit_code: int | None = None, stderr: list[str] | None = None) -> None:
        """The stream ends, as when the engine process exits with `exit_code`."""
        self.exit_code = exit_code
        self.stderr = stderr or []
        self._queue.put_nowait(None)

    async def next_event(self) -> Event | None:
        return await self._queue.get()

    async def send(self, command: Command) -> None:
        self.sent.append(command)

    def new_id(self) -> str:
        return f"c{next(self._ids)}"

    @property
    def returncode(self) -> int | None:
        return self.exit_code

    def stderr_tail(self, n: int = 20) -> list[str]:
        return self.stderr[-n:]

    async def detach(self) -> None:
        self.detached = True

    async def close(self) -> None:
        self.closed = True
