"""The hpotui dashboard: a Textual app over one engine link.

Events are folded into `CampaignState` the moment they arrive (a `@work` reader), while
panels redraw on a short timer, only for the topics that changed: a burst of events costs
one redraw. Keys send protocol commands; the engine answers with `Reply` and a fresh
`QueueSnapshot`, which is the only thing that changes the queue on screen.

The link is an engine's or, on a finished campaign, its view from storage (no engine:
hpotui/opening.py); a key that needs an engine while none runs starts it with its
command, or says why not (`command_blocker`). Never lose the campaign: quitting and a
closed terminal leave it running (hpotui/leaving.py); an engine that dies shows its exit
status and last stderr lines with a key to restart it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from engine.errors import UserError
from engine.protocol import Command, Event, RequestSnapshot
from hpotui.leaving import LeavingApp
from hpotui.links import FINISHED, EngineFactory, Link, LinkFactory, ViewFactory, has_engine
from hpotui.screens.crashed import CrashChoice, EngineCrashedScreen
from hpotui.screens.hosts import HostsScreen
from hpotui.screens.main import KEYS, TOPICS, MainScreen
from hpotui.screens.trial_curves import TrialCurvesScreen
from hpotui.screens.trial_table import TrialTableScreen
from hpotui.state import CampaignState
from hpotui.widgets.hardware_panel import HardwarePanel
from hpotui.widgets.log_view import LogView
from hpotui.widgets.status_bar import StatusBar

FRAME_S = 0.05  # at most one redraw per FRAME_S: events in between are coalesced


class HpotuiApp(LeavingApp):
    CSS_PATH = "hpotui.tcss"
    TITLE = "hpotui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        config: Path,
        link_factory: LinkFactory,
        *,
        thresholds: tuple[float, float] = (85.0, 95.0),
        history: Callable[[Link], list[Event]] | None = None,
        engine_factory: EngineFactory | None = None,
        view_factory: ViewFactory | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.state = CampaignState()
        self.link: Link | None = None
        self.exit_message = ""
        self._link_factory = link_factory
        self._engine_factory = engine_factory or self._engine_over_link_factory
        self._view_factory = view_factory
        self._starting = False  # a link is being opened: commands wait for it
        self._start_ids = itertools.count(1)
        self._history = history
        self._thresholds = thresholds
        self._dirty: set[str] = set()
        self._draw_pending = False
        self._last_draw = 0.0
        self._pending: dict[str, str] = {}  # command id -> what it does (for notifications)
        self.sent: list[Command] = []  # every command sent, in order (tests, debugging)
        self._leaving = False  # we asked the link to end: its end is no crash
        self.frames = 0  # redraws (benchmarks)
        self.drawn_events = 0  # events folded when the last redraw ran (benchmarks)
        self._detaching: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ screens

    def get_default_screen(self) -> MainScreen:
        warning_c, critical_c = self._thresholds
        self.main = MainScreen(self.state, warning_c=warning_c, critical_c=critical_c)
        return self.main

    def on_mount(self) -> None:
        self.sub_title = str(self.config)
        self._install_hangup()
        self._mark(TOPICS)
        self.start_link()

    # ------------------------------------------------------------------ events in

    @work(exclusive=True, group="link", exit_on_error=False)
    async def start_link(self, commands: Sequence[Command] = (), view: bool = False) -> None:
        """Open the campaign (attach to its engine, its finished view from storage, or
        start the engine; with `commands`, the engine, which gets them first; `view`:
        the finished view only), replay history, then fold its events."""
        self._leaving = False
        old, self.link = self.link, None
        if old is not None and not has_engine(old):
            await old.close()  # a finished campaign's view: its hardware sampling stops
        status = self.main.query_one(StatusBar)
        status.link_state = "starting"
        self.state.bye = None
        self._starting = True
        self._mark({"status"})
        try:
            if view and self._view_factory is not None:
                opened = await self._view_factory()
                if opened is None:
                    status.link_state = "finished"
                    self._mark({"status"})
                    return
                link = opened
            elif commands:
                link = await self._engine_factory(commands)
            else:
                link = await self._link_factory()
        except UserError as error:
            self._engine_down(None, [str(error)], "the engine could not start")
            return
        except Exception as error:  # the link is outside our control: show, don't crash
            self._engine_down(
                None, [f"{type(error).__name__}: {error}"], "could not reach the engine"
            )
            return
        finally:
            self._starting = False
        self.link = link
        if not has_engine(link):
            status.link_state = "finished"
            self.state.campaign = getattr(link, "campaign", "") or self.state.campaign
            self.state.hello = None  # no engine session
            await self._fold_stream(link)
            return
        status.link_state = "attached" if link.attached else "running"
        if link.attached and self._history is not None:
            try:
                past = await asyncio.to_thread(self._history, link)
            except Exception as error:
                self.notify(f"could not read the event history: {error}", severity="warning")
                past = []
            for event in past:
                self._fold(event)
            self.state.bye = None  # an earlier session's goodbye says nothing about this one
            self._mark({"queue", "trials", "curves", "hardware", "log"})
        await self.send_command(RequestSnapshot, None)
        await self._fold_stream(link)
        self._link_ended(link)

    async def _fold_stream(self, link: Link) -> None:
        """Fold the link's events until its stream ends."""
        while True:
            event: Event | None
            try:
                event = await link.next_event()
            except Exception as error:
                self.state.add_log(time.time(), "error", f"link: {error}", "hpotui")
                event = None
            if event is None:
                return
            try:
                self._fold(event)
            except Exception as error:  # one bad event must not stop the dashboard
                self._show_error(f"could not show a {event.type} event: {error!r}")

    async def _engine_over_link_factory(self, commands: Sequence[Command]) -> Link:
        """Without a real engine opener (tests): the link factory's link, sent the commands."""
        link = await self._link_factory()
        for command in commands:
            await link.send(command)
        return link

    def _fold(self, event: Event) -> None:
        self._mark(self.state.apply(event))
        command_id = getattr(event, "command_id", None)
        if command_id is not None and command_id in self._pending:
            what = self._pending.pop(command_id)
            ok = getattr(event, "ok", False)
            message = getattr(event, "message", "")
            if ok:
                self.notify(f"{what}: {message}" if message else what, timeout=3)
            else:
                self.notify(f"{what} refused: {message}", severity="error", timeout=6)

    def _show_error(self, message: str) -> None:
        """An app-level problem: a notification and a log line, never a traceback."""
        self.state.add_log(time.time(), "error", message, "hpotui")
        self._mark({"log"})
        self.notify(message, severity="error", timeout=8)

    def _link_ended(self, link: Link) -> None:
        status = self.main.query_one(StatusBar)
        self.link = None
        if self._leaving:
            return
        bye = self.state.bye
        code = link.returncode
        if bye is not None and bye.exit_code == 0 and code in (None, 0):
            status.link_state = "finished"
            self.notify(f"engine finished: {bye.reason}", timeout=10)
            self._mark({"status"})
            if self._view_factory is not None:
                self.start_link(view=True)  # the finished view: hardware sampled here
            return
        if code is None and bye is not None:
            code = bye.exit_code
        reason = bye.reason if bye is not None else "the engine's event stream ended"
        errors = list(self.state.errors)[-10:]
        self._engine_down(code, errors + link.stderr_tail(20 - len(errors)), reason)

    def _engine_down(self, code: int | None, stderr: list[str], reason: str) -> None:
        self.main.query_one(StatusBar).link_state = "down"
        self.state.add_log(time.time(), "error", f"engine down ({code}): {reason}", "hpotui")
        self._mark({"status", "log"})
        self.push_screen(EngineCrashedScreen(code, stderr, reason), self._after_crash)

    def _after_crash(self, choice: CrashChoice | None) -> None:
        if choice == "restart":
            self.state.bye = None
            self.start_link()
        elif choice == "quit":
            self.exit_message = "hpotui: the engine is not running"
            self.exit(1, return_code=1)

    # ------------------------------------------------------------------ redraws

    def _mark(self, topics: Iterable[str]) -> None:
        """Note what changed; the first change after a quiet spell is drawn at once,
        a burst waits for the next frame slot (one redraw for the whole burst)."""
        self._dirty.update(topics)
        if self._draw_pending:
            return
        wait = self._last_draw + FRAME_S - time.monotonic()
        if wait <= 0 and self.main.ready:
            self._draw()  # no extra trip through the event loop
        else:
            self._draw_pending = True
            if wait > 0:
                self.set_timer(wait, self._draw)
            else:  # a zero-interval Textual timer divides by zero
                self.call_later(self._draw)

    def _draw(self) -> None:
        self._draw_pending = False
        self._last_draw = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        if not dirty:
            return
        self.frames += 1
        self.drawn_events = self.state.n_events
        self.main.draw(dirty)
        screen = self.screen
        if isinstance(screen, TrialTableScreen) and dirty & {"trials", "curves"}:
            screen.refresh_rows()
        if isinstance(screen, TrialCurvesScreen) and dirty & {"trials", "curves"}:
            screen.refresh_curves()
        if isinstance(screen, HostsScreen) and "hosts" in dirty:
            screen.refresh_rows()

    # ------------------------------------------------------------------ commands out

    def command_blocker(self, starts_engine: bool) -> str | None:
        """Why a command cannot go now (None: it can). With no engine, a command that
        `starts_engine` starts one; any other is refused on a finished campaign's view."""
        if self._starting:
            return "the engine is starting; try again in a moment"
        if self.link is not None and not has_engine(self.link) and not starts_engine:
            return FINISHED
        return None

    async def send_command(
        self, make: Callable[[str], Command], what: str | None, *, starts_engine: bool = False
    ) -> bool:
        """Send `make(new id)`; `what` (e.g. "skip 2M_h1") names it in the notification
        that the engine's Reply brings. With no engine running, start it for the command
        (said so) or say why not (`command_blocker`). False when it was not sent."""
        link = self.link
        blocker = None if has_engine(link) else self.command_blocker(starts_engine)
        if blocker is not None:
            self.notify(f"{what}: {blocker}" if what else blocker, severity="warning", timeout=8)
            self.state.add_log(time.time(), "warning", f"{what}: {blocker}", "hpotui")
            self._mark({"log"})
            return False
        if link is None or not has_engine(link):
            command = make(f"fe{os.getpid()}-start-{next(self._start_ids)}")
            if what is not None:
                self._pending[command.id] = what
                self.notify(f"{what}: starting the campaign's engine", timeout=6)
                self.state.add_log(time.time(), "info", f"starting the engine to {what}", "hpotui")
                self._mark({"log"})
            self.sent.append(command)
            self.start_link([command])
            return True
        command = make(link.new_id())
        if what is not None:
            self._pending[command.id] = what
        self.sent.append(command)
        try:
            await link.send(command)
        except Exception as error:  # a dead pipe is shown, never raised at the user
            self._pending.pop(command.id, None)
            self.notify(f"could not send {command.type}: {error}", severity="error")
            self.state.add_log(
                self.state.last_ts, "error", f"send {command.type}: {error}", "hpotui"
            )
            self._mark({"log"})
            return False
        return True

    # ------------------------------------------------------------------ plumbing

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for _, shown, action, description, _ in KEYS:
            yield SystemCommand(
                f"{description} ({shown})",
                description,
                lambda action=action: self.main.run_action(action),
            )
        yield SystemCommand(
            "Log: next level filter",
            "debug/info/warning/error",
            self.main.query_one(LogView).action_cycle_level,
        )


def create_app(
    config: Path,
    *,
    storage: str | None = None,
    workers: str | None = None,
    link_factory: LinkFactory | None = None,
    engine_args: list[str] | None = None,
) -> HpotuiApp:
    """The dashboard on `config` (hpotui/opening.py: attach, a finished campaign's view
    from storage, or start the engine); `link_factory` replaces all that (tests, bench)."""
    thresholds = HardwarePanel.thresholds_from(config)
    if link_factory is not None:
        return HpotuiApp(config, link_factory, thresholds=thresholds)
    from hpotui.opening import Opener

    opener = Opener(config, storage=storage, workers=workers, extra=engine_args)
    return HpotuiApp(
        config,
        opener.open,
        thresholds=thresholds,
        history=opener.history,
        engine_factory=opener.engine,
        view_factory=opener.view,
    )


def run_app(args: argparse.Namespace) -> int:
    """`hpotui [CONFIG]`: the dashboard. Returns the exit code."""
    from engine.paths import default_config
    from hpotui.link import engine_flags as link_flags

    config = Path(args.config) if args.config else default_config()
    if not config.is_file():
        raise UserError(
            f"{config}: no such campaign config",
            where="command line",
            hint="pass the path of a campaign TOML, e.g. configs/demo.toml",
        )
    app = create_app(
        config.resolve(),
        storage=args.storage,
        workers=args.workers,
        engine_args=link_flags(args),
    )
    result = app.run()
    if app.exit_message:
        print(app.exit_message)
    return app.return_code or int(result or 0)  # return_code is 1 after an internal error
