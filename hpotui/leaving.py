"""How the dashboard leaves, never stopping the campaign by accident: quitting asks
whether to stop after the current trials or leave the engine running (nothing to ask on
a finished campaign's view, where no engine runs); a closed terminal (SIGHUP) detaches;
an internal error is logged to a file, shown in one line, and leaves the engine running.

`LeavingApp` is the base of `hpotui.app.HpotuiApp`, which provides what it declares.
"""

from __future__ import annotations

import asyncio
import signal
import traceback
from collections.abc import Callable
from pathlib import Path

from textual.app import App

from engine.protocol import Command, Stop
from hpotui.links import Link, has_engine
from hpotui.screens.quit import QuitChoice, QuitScreen
from hpotui.state import CampaignState


class LeavingApp(App[int]):
    # provided by HpotuiApp
    config: Path
    state: CampaignState
    link: Link | None
    exit_message: str
    _leaving: bool
    _detaching: asyncio.Future[None] | None

    async def send_command(
        self, make: Callable[[str], Command], what: str | None, *, starts_engine: bool = False
    ) -> bool:
        raise NotImplementedError

    async def action_quit(self) -> None:
        if not has_engine(self.link):
            if self.link is not None:
                await self.link.close()  # a finished campaign's view: nothing runs
            self.exit(0)
            return
        self.push_screen(QuitScreen(), self._after_quit)

    async def _after_quit(self, choice: QuitChoice) -> None:
        if choice is None:
            return
        await self.leave(stop=choice == "stop")

    async def leave(self, *, stop: bool) -> None:
        """Exit the app; the engine keeps running (to finish current trials if `stop`)."""
        link, self._leaving = self.link, True
        if link is not None and not has_engine(link):
            await link.close()
            self.exit(0)
            return
        if link is not None:
            if stop:
                await self.send_command(lambda i: Stop(i, mode="after_current"), None)
            try:
                await link.detach()
            except Exception as error:
                self.exit_message = f"hpotui: detaching from the engine failed: {error}"
        hello = self.state.hello
        where = f" (engine pid {hello.pid})" if hello else ""
        if stop:
            self.exit_message = self.exit_message or (
                f"hpotui: the campaign stops after its current trials{where}"
            )
        else:
            self.exit_message = self.exit_message or (
                f"hpotui: the campaign keeps running{where}; `hpotui {self.config}` re-attaches"
            )
        self.exit(0)

    def _install_hangup(self) -> None:
        """A closed terminal detaches: the campaign the user left running keeps running."""
        try:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, lambda: self.call_later(self._hangup))
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            pass  # not on the main thread, or no SIGHUP (Windows)

    async def _hangup(self) -> None:
        await self.leave(stop=False)

    def _fatal_error(self) -> None:
        """An unexpected app error: log the traceback to a file, show one line, and leave
        the engine running (never a traceback on screen, never a lost campaign)."""
        from engine.paths import outputs_dir

        path = outputs_dir() / "hpotui-crash.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as out:
                out.write(traceback.format_exc())
            where = f"details in {path}"
        except OSError:
            where = "no crash log could be written"
        error = self._exception
        self.exit_message = f"hpotui: internal error: {type(error).__name__}: {error} ({where})"
        link, self.link = self.link, None
        if link is not None:
            self._leaving = True
            self._detaching = asyncio.ensure_future(link.detach())
        self._close_messages_no_wait()
