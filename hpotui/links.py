"""What the dashboard needs from its connection to a campaign, whatever is behind it: an
engine (`hpotui.link.EngineLink`: started or attached), a finished campaign's view from
storage (`hpotui.stored_link.StoredLink`, no engine), or a test's scripted stand-in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from engine.protocol import Command, Event


class Link(Protocol):
    """What the app needs from a link (an `engine` attribute False: no engine behind it;
    absent: an engine, as on fakes)."""

    attached: bool

    async def next_event(self) -> Event | None: ...
    async def send(self, command: Command) -> None: ...
    def new_id(self) -> str: ...
    @property
    def returncode(self) -> int | None: ...
    def stderr_tail(self, n: int = 20) -> list[str]: ...
    async def detach(self) -> None: ...
    async def close(self) -> None: ...


LinkFactory = Callable[[], Awaitable[Link]]
# starts (or attaches to) the engine, the commands of the key that needed it first
EngineFactory = Callable[[Sequence[Command]], Awaitable[Link]]
# a finished campaign's view from storage (hpotui.stored_link), None when not finished
ViewFactory = Callable[[], Awaitable[Link | None]]
FINISHED = (
    "the campaign is finished and no engine runs: r re-runs an experiment, a adds "
    "experiments, s un-skips one (each starts the engine)"
)


def has_engine(link: Link | None) -> bool:
    """Is an engine behind `link`? (a finished campaign's view from storage has none)"""
    return link is not None and getattr(link, "engine", True)
