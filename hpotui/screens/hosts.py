"""`h`: every machine of the campaign (hosts in storage), and remote control of one.

One row per machine as its host record says (engine.fleet.host_records), `lost` when it
was not seen for the heartbeat grace. Keys act on the selected machine through the
engine, which records the command in the storage with who gave it and when: d drain
(its running trials finish, no new ones), x stop (interrupt them now; re-run elsewhere),
r resume, +/- one worker more or fewer. Updated live while open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Label

from engine.protocol import ControlHost
from hpotui.host_rows import COLUMNS, host_cells
from hpotui.state import CampaignState
from hpotui.widgets.key_footer import KeyFooter

if TYPE_CHECKING:
    from hpotui.app import HpotuiApp

STATUS_STYLES = {
    "working": "bold green",
    "idle": "dim",
    "draining": "bold yellow",
    "drained": "yellow",
    "stopped": "bold magenta",
    "stopping": "magenta",
    "exited": "dim",
    "lost": "bold white on red",
}
# (key, help text): the Hosts screen's keys, also listed by the `?` help screen
KEYS = (
    ("d", "Hosts: drain the selected machine (running trials finish, no new ones)"),
    ("x", "Hosts: stop the selected machine now (its trials re-run elsewhere)"),
    ("r", "Hosts: resume the selected machine"),
    ("+ / -", "Hosts: one worker more / fewer on the selected machine"),
)


class HostsScreen(Screen[None]):
    BINDINGS = [
        ("escape,q,h", "close", "Back"),
        ("d", "control('drain')", "Drain"),
        ("x", "control('stop')", "Stop now"),
        ("r", "control('resume')", "Resume"),
        ("plus,equals_sign", "workers(1)", "+Worker"),
        ("minus", "workers(-1)", "-Worker"),
        ("question_mark", "help", "Help"),
    ]

    def __init__(self, state: CampaignState) -> None:
        super().__init__()
        self.state = state
        self._key: object = None

    def compose(self) -> ComposeResult:
        yield Label(id="hosts-title")
        yield DataTable(id="hosts", cursor_type="row")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.refresh_rows()
        table.focus()

    def refresh_rows(self) -> None:
        hosts = self.state.hosts
        counts: dict[str, int] = {}
        for view in hosts:
            status = str(view.get("status", "?"))
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        title = f"hosts: {len(hosts)} machine(s)" + (f" ({summary})" if summary else "")
        self.query_one("#hosts-title", Label).update(title)
        rows = [host_cells(view) for view in hosts]
        key = [row[:-3] + row[-2:] for row in rows]  # not "seen", which ticks
        if key == self._key:
            return
        self._key = key
        table = self.query_one(DataTable)
        selected = self.selected
        table.clear()
        for view, cells in zip(hosts, rows, strict=True):
            badge = Text(cells[2], style=STATUS_STYLES.get(cells[2], ""))
            table.add_row(*cells[:2], badge, *cells[3:], key=str(view.get("host")))
        if selected is not None:
            names = [str(v.get("host")) for v in hosts]
            if selected in names:
                table.move_cursor(row=names.index(selected))

    @property
    def selected(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        row = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return None if row.value is None else str(row.value)

    def _view(self, host: str) -> dict[str, Any]:
        return next((v for v in self.state.hosts if v.get("host") == host), {})

    async def action_control(self, action: str) -> None:
        host = self.selected
        if host is None:
            self.notify("no machine selected", severity="warning")
            return
        app = cast("HpotuiApp", self.app)
        await app.send_command(lambda i: ControlHost(i, host, action), f"{action} {host}")  # type: ignore[arg-type]

    async def action_workers(self, delta: int) -> None:
        host = self.selected
        if host is None:
            self.notify("no machine selected", severity="warning")
            return
        workers = int(self._view(host).get("workers") or 0) + delta
        if workers < 1:
            self.notify("at least one worker; d drains a machine", severity="warning")
            return
        app = cast("HpotuiApp", self.app)
        await app.send_command(
            lambda i: ControlHost(i, host, "workers", workers), f"{host}: workers -> {workers}"
        )

    def action_help(self) -> None:
        from hpotui.screens.help import HelpScreen

        keys = [(k, d.removeprefix("Hosts: ")) for k, d in KEYS]
        self.app.push_screen(HelpScreen([*keys, ("esc / q / h", "back")], title="Hosts keys"))

    def action_close(self) -> None:
        self.dismiss(None)
