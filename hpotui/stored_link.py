"""The dashboard's link when no engine runs (a finished campaign opened from storage):
the stored view's events first, then this machine's hardware, sampled by the front-end
itself with the engine's own probe and thermal policy (a finished campaign's hardware
panel once said "waiting for the first hardware sample" forever).

It implements what `hpotui.app.Link` asks, with `engine = False`: nothing can be sent
(keys that need an engine start one, hpotui/app.py), and quitting stops nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable
from typing import Any

from engine import protocol as p
from engine.campaign.model import MonitorSpec


class StoredLink:
    attached = False
    engine = False  # no engine behind it

    def __init__(
        self,
        campaign: str,
        events: list[p.Event],
        monitor: MonitorSpec | None,
        later: Callable[[], list[p.Event]] | None = None,
    ) -> None:
        """`events` first; then `later()`'s (read on a thread once those are drawn:
        the log's past), then hardware samples per `monitor` (None: none)."""
        self.campaign = campaign
        self._queue: asyncio.Queue[p.Event | None] = asyncio.Queue()
        for event in events:
            self._queue.put_nowait(event)
        self._later = later
        self._spec = monitor
        self._monitor: Any = None
        self._probe: Any = None
        self._closed = False
        self._ids = itertools.count(1)
        self._prefix = f"fe{os.getpid()}-view-"

    async def next_event(self) -> p.Event | None:
        if self._queue.empty() and self._later is not None:
            later, self._later = self._later, None
            try:
                for event in await asyncio.to_thread(later):
                    self._queue.put_nowait(event)
            except Exception as error:  # the log's past is a nicety: say, and go on
                self._queue.put_nowait(
                    p.LogLine(level="warning", message=f"events.jsonl not read: {error}")
                )
        if self._queue.empty() and self._spec is not None and self._monitor is None:
            spec, self._spec = self._spec, None  # once, after the stored view is drawn
            try:
                await asyncio.to_thread(self._start_monitor, spec, asyncio.get_running_loop())
            except Exception as error:  # no sensor access: said once, in the log
                message = f"hardware monitor unavailable: {error}"
                self._queue.put_nowait(p.LogLine(level="warning", message=message))
        return await self._queue.get()

    def _start_monitor(self, spec: MonitorSpec, loop: asyncio.AbstractEventLoop) -> None:
        from engine.monitor.factory import make_probe
        from engine.monitor.policy import ThermalPolicy
        from engine.monitor.sampler import MonitorThread

        if self._closed:
            return

        def sampled(sample: Any, decision: Any) -> None:  # on the monitor's thread
            events: list[p.Event] = [p.HardwareSampled(sample=sample.to_dict())]
            thermal = decision.event()
            if thermal is not None:
                events.append(thermal)
            for event in events:
                loop.call_soon_threadsafe(self._queue.put_nowait, event)

        def failed(error: BaseException) -> None:
            line = p.LogLine(level="warning", message=f"monitor: {error}")
            loop.call_soon_threadsafe(self._queue.put_nowait, line)

        self._probe = make_probe(lambda: [])  # no campaign process runs
        self._monitor = MonitorThread(
            self._probe, ThermalPolicy(spec), sampled, on_error=failed, name="hpotui-fe-monitor"
        ).start()

    async def send(self, command: p.Command) -> None:
        raise ConnectionError("no engine runs this campaign (it is finished)")

    def new_id(self) -> str:
        return f"{self._prefix}{next(self._ids)}"

    @property
    def returncode(self) -> int | None:
        return None

    def stderr_tail(self, n: int = 20) -> list[str]:
        return []

    async def detach(self) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop sampling; the stream ends."""
        if self._closed:
            return
        self._closed = True
        monitor, probe = self._monitor, self._probe
        if monitor is not None:
            await asyncio.to_thread(monitor.stop, 2.0)
        if probe is not None:
            await asyncio.to_thread(probe.close)
        self._queue.put_nowait(None)
