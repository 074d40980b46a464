"""How the dashboard opens a campaign, in this order:

1. attach to its running engine (its socket answers), with the recent past of
   events.jsonl replayed first (hpotui/history.py: the log, thermal changes, the last
   minute of hardware; the trials come from the engine, read from the storage);
2. a finished campaign: its view from storage, no engine (hpotui/stored.py, with the
   front-end's own hardware sampling: hpotui/stored_link.py);
3. else start the engine (`python -m engine`), which resumes the campaign.

All three under the campaign's start lock (hpotui/link.py), so dashboards opened at the
same moment share one engine. A key that needs an engine while none runs starts it with
its command (`engine`), which the engine applies before anything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine import protocol as p
from hpotui.link import EngineLink, campaign_dir_of
from hpotui.stored_link import StoredLink


class Opener:
    def __init__(
        self,
        config: Path,
        *,
        storage: str | None = None,
        workers: str | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.config = config
        self.storage = storage
        self.workers = workers
        self.extra = extra

    async def open(self) -> EngineLink | StoredLink:
        """Attach, else the finished view, else start the engine."""
        return await EngineLink.open(
            self.config,
            storage=self.storage,
            workers=self.workers,
            extra=self.extra,
            instead=self._finished,
        )

    async def engine(self, commands: Sequence[p.Command]) -> EngineLink:
        """Attach to the engine or start it; `commands` reach it first."""
        link = await EngineLink.open(
            self.config,
            storage=self.storage,
            workers=self.workers,
            extra=self.extra,
            commands=commands,
        )
        assert isinstance(link, EngineLink)
        return link

    async def view(self) -> StoredLink | None:
        """The finished view alone (after an engine finished the campaign), or None."""
        return await asyncio.to_thread(self._finished)

    def history(self, _link: Any) -> list[p.Event]:
        """The recent past of events.jsonl, replayed before an attached engine's events."""
        from hpotui.history import recent_events

        folder = campaign_dir_of(self.config)
        return [] if folder is None else recent_events(folder)

    def _finished(self) -> StoredLink | None:
        from hpotui.stored import open_finished

        found = open_finished(self.config, self.storage)
        if found is None:
            return None
        return StoredLink(found.name, found.events, found.monitor, later=found.past)
