"""The dashboard's main screen: the panels, their layout classes, and the campaign keys.

The keys live here, not on the app, so they act only while this screen is on top: in a
dialog, `s` or `p` can never skip or pause an experiment behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widget import Widget

from engine.protocol import (
    AddExperiments,
    Command,
    Move,
    Pause,
    PauseAll,
    Rerun,
    Resume,
    ResumeAll,
    SetWorkers,
    Skip,
)
from hpotui.screens.add_experiments import AddExperimentsScreen
from hpotui.screens.confirm import ConfirmScreen
from hpotui.screens.help import HelpScreen
from hpotui.screens.hosts import KEYS as HOSTS_KEYS
from hpotui.screens.hosts import HostsScreen
from hpotui.screens.trial_table import TrialTableScreen
from hpotui.state import CampaignState
from hpotui.widgets.best_table import BestArchitectures
from hpotui.widgets.hardware_panel import HardwarePanel
from hpotui.widgets.history_chart import HistoryChart
from hpotui.widgets.key_footer import KeyFooter
from hpotui.widgets.log_view import LogView
from hpotui.widgets.loss_chart import LossChart
from hpotui.widgets.queue_table import QueueTable
from hpotui.widgets.scaling_chart import ScalingChart
from hpotui.widgets.status_bar import StatusBar

# (binding keys, key as shown in help, app action, description, in the footer); one list
# feeds the bindings, the footer, the `?` help screen and the command palette. The footer
# holds what fits 120 columns (Enter, shown by the queue table, l, ? and q included);
# moves are in `?`.
KEYS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("k", "up / k", "select_prev", "Select the previous experiment", False),
    ("j", "down / j", "select_next", "Select the next experiment", False),
    ("shift+up,K", "shift+up / K", "move(-1)", "Move the selected experiment up", False),
    ("shift+down,J", "shift+down / J", "move(1)", "Move the selected experiment down", False),
    ("t", "t", "move_top", "Move the selected experiment to the top", False),
    ("p", "p", "pause", "Pause / resume the selected experiment", True),
    ("P", "P", "pause_all", "Pause / resume all experiments", True),
    ("s", "s", "skip", "Skip / un-skip the selected experiment", True),
    ("r", "r", "rerun", "Re-run the selected experiment (asks first)", True),
    ("a", "a", "add", "Add experiments from a config file", True),
    ("plus,equals_sign", "+", "workers(1)", "One more worker", True),
    ("minus", "-", "workers(-1)", "One worker fewer", True),
    ("enter", "enter", "trials", "Trial table of the selected experiment", False),
    ("h", "h", "hosts", "Hosts: every machine; drain, stop, resume, workers there", False),
    ("l", "l", "focus_log", "Focus the log (f there: filter by level)", True),
    ("question_mark", "?", "help", "Show the keys", True),
    ("q", "q", "quit", "Quit (stop after current trials, or leave running)", True),
)
SHORT = {
    "move(-1)": "Up",
    "move(1)": "Down",
    "move_top": "Top",
    "pause": "Pause",
    "pause_all": "Pause all",
    "skip": "Skip",
    "rerun": "Re-run",
    "add": "Add",
    "workers(1)": "+Worker",
    "workers(-1)": "-Worker",
    "focus_log": "Log",
    "hosts": "Hosts",
    "trials": "Trials",
    "help": "Help",
    "quit": "Quit",
}
if TYPE_CHECKING:
    from hpotui.app import HpotuiApp

PanelT = TypeVar("PanelT", bound=Widget)

TOPICS = frozenset(("queue", "trials", "curves", "hardware", "log", "status"))


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(keys, action, SHORT.get(action, description), show=show, tooltip=description)
        for keys, _, action, description, show in KEYS
    ]

    def __init__(self, state: CampaignState, *, warning_c: float, critical_c: float) -> None:
        super().__init__()
        self.state = state
        self.warning_c = warning_c
        self.critical_c = critical_c
        self.ready = False  # panels composed and mounted: draw() can run
        self._panels: dict[type[Widget], Widget] = {}

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="top"):
            yield QueueTable(id="queue")
            yield BestArchitectures(id="best")
        with Horizontal(id="charts"):
            yield LossChart(id="loss")
            yield HistoryChart(id="history")
            yield ScalingChart(id="scaling")
        with Horizontal(id="bottom"):
            yield HardwarePanel(id="hardware", warning_c=self.warning_c, critical_c=self.critical_c)
            yield LogView(id="log")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._layout_classes(self.size.width, self.size.height)
        self.query_one(QueueTable).focus()
        self.ready = True
        self.draw(TOPICS)

    def on_screen_resume(self) -> None:
        """Back from the trial table or a trial's curves: the loss panel may show
        another trial now."""
        if self.ready:
            self.draw({"curves", "trials"})

    def on_resize(self, event: Any) -> None:
        self._layout_classes(event.size.width, event.size.height)

    def _layout_classes(self, width: int, height: int) -> None:
        """Layouts (hpotui.tcss): 120x40 everything; 80x24 (.narrow .short) the queue
        over the loss and history charts; 60x16 and 40x12 (.tiny) the queue alone in
        compact columns (l shows the log instead). Panels hide, never overflow."""
        self.set_class(width < 110, "narrow")
        self.set_class(height < 32, "short")
        self.set_class(width < 76 or height < 20, "tiny")
        if not self.is_mounted:
            return
        self.query_one(StatusBar).compact = 2 if width < 70 else int(width < 100)
        if self.query_one(QueueTable).set_compact(width < 76) and self.ready:
            self.draw({"queue"})

    def _panel(self, kind: type[PanelT]) -> PanelT:
        """The screen's one widget of `kind`, looked up once: draw() runs per frame."""
        found = self._panels.get(kind)
        if found is None:
            found = self._panels[kind] = self.query_one(kind)
        return cast(PanelT, found)

    @property
    def selected(self) -> str | None:
        return self.query_one(QueueTable).selected

    def draw(self, dirty: set[str] | frozenset[str]) -> None:
        """Redraw the panels that show the `dirty` topics (see `CampaignState.apply`)."""
        if not self.ready:
            return  # on_mount draws everything
        state = self.state
        queue = self._panel(QueueTable)
        if "queue" in dirty:
            queue.update_from(state)
        selected = queue.selected
        if dirty & {"queue", "trials"}:
            self._panel(BestArchitectures).update_from(state, selected)
            self._panel(HistoryChart).update_from(state, selected)
            self._panel(ScalingChart).update_from(state)
        if dirty & {"curves", "trials"}:
            self._panel(LossChart).update_from(state, selected)
        if "hardware" in dirty:
            self._panel(HardwarePanel).update_from(state)
        if "log" in dirty:
            self._panel(LogView).update_from(state)
        self._panel(StatusBar).update_from(state)

    def on_queue_table_experiment_highlighted(self, _: QueueTable.ExperimentHighlighted) -> None:
        self.draw({"trials", "curves"})  # user-paced: at once, no need to coalesce

    def on_queue_table_experiment_chosen(self, event: QueueTable.ExperimentChosen) -> None:
        self.app.push_screen(TrialTableScreen(event.name, self.state))

    # ------------------------------------------------------------------ key actions

    @property
    def hpotui(self) -> HpotuiApp:
        return cast("HpotuiApp", self.app)

    async def _on_selected(
        self, make: Callable[[str, str], Command], what: str, *, starts_engine: bool = False
    ) -> None:
        name = self.selected
        if name is None:
            self.notify("no experiment selected", severity="warning")
            return
        await self.hpotui.send_command(
            lambda i: make(i, name), f"{what} {name}", starts_engine=starts_engine
        )

    def _blocked(self, what: str) -> bool:
        """Say why a command that asks something first cannot go now, before asking
        (re-run asked its question, then answered "the engine is not connected")."""
        blocker = self.hpotui.command_blocker(starts_engine=True)
        if blocker is not None:
            self.notify(f"{what}: {blocker}", severity="warning", timeout=8)
        return blocker is not None

    def action_select_prev(self) -> None:
        self.query_one(QueueTable).action_cursor_up()

    def action_select_next(self) -> None:
        self.query_one(QueueTable).action_cursor_down()

    async def action_move(self, by: int) -> None:
        what = "move up" if by < 0 else "move down"
        await self._on_selected(lambda i, n: Move(i, n, by=by), what)

    async def action_move_top(self) -> None:
        await self._on_selected(lambda i, n: Move(i, n, to=0), "move to top")

    async def action_pause(self) -> None:
        row = self.state.experiment(self.selected)
        if row is not None and row.state == "paused":
            await self._on_selected(Resume, "resume")
        else:
            await self._on_selected(Pause, "pause")

    async def action_pause_all(self) -> None:
        if self.state.paused_all:
            await self.hpotui.send_command(ResumeAll, "resume all")
        else:
            await self.hpotui.send_command(PauseAll, "pause all")

    async def action_skip(self) -> None:
        row = self.state.experiment(self.selected)
        if row is not None and row.state == "skipped":  # queued again, with its trials
            await self._on_selected(Resume, "un-skip", starts_engine=True)
        else:
            await self._on_selected(Skip, "skip")

    def action_rerun(self) -> None:
        name = self.selected
        if name is None:
            self.notify("no experiment selected", severity="warning")
            return
        if self._blocked(f"re-run {name}"):
            return

        async def answered(yes: bool | None) -> None:
            if yes:
                await self.hpotui.send_command(
                    lambda i: Rerun(i, name), f"re-run {name}", starts_engine=True
                )

        question = f"Re-run {name} in a fresh study? (its current study is archived, not deleted)"
        self.app.push_screen(ConfirmScreen(question), answered)

    def action_add(self) -> None:
        if self._blocked("add experiments"):
            return

        async def chosen(path: str | None) -> None:
            if path:
                what = f"add {Path(path).name}"
                await self.hpotui.send_command(
                    lambda i: AddExperiments(i, path), what, starts_engine=True
                )

        self.app.push_screen(AddExperimentsScreen(), chosen)

    async def action_workers(self, delta: int) -> None:
        workers = max(1, self.state.workers + delta)
        if workers == self.state.workers:
            self.notify("at least one worker runs; P pauses all training", severity="warning")
            return
        await self.hpotui.send_command(lambda i: SetWorkers(i, workers), f"workers -> {workers}")

    def action_trials(self) -> None:
        name = self.selected
        if name is not None:
            self.app.push_screen(TrialTableScreen(name, self.state))

    def action_hosts(self) -> None:
        self.app.push_screen(HostsScreen(self.state))

    def action_focus_log(self) -> None:
        self.query_one(LogView).focus()

    def action_help(self) -> None:
        keys = [(shown, description) for _, shown, _, description, _ in KEYS]
        self.app.push_screen(HelpScreen(keys + list(HOSTS_KEYS)))

    async def action_quit(self) -> None:
        await self.hpotui.action_quit()
