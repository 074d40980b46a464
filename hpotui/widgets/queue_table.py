"""The queue: one row per experiment in run order, the selection the keys act on."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from engine.protocol import ExperimentStatus
from hpotui.state import CampaignState
from hpotui.widgets.format import bar, duration, plural, set_border, state_text, value

COLUMNS = ("#", "experiment", "budget", "h", "state", "trials", "best", "ETA")
COMPACT = ("experiment", "state", "trials", "best", "ETA")  # the name says budget and h
COMPACT_HEADERS = {"experiment": "exp"}
SHORT_STATES = {"queued": "queue", "running": "run", "paused": "pause", "skipped": "skip"}


class QueueTable(DataTable[object]):
    """Rows keyed by experiment name; the cursor follows the selected experiment when the
    queue is reordered."""

    class ExperimentHighlighted(Message):
        """The cursor moved onto another experiment."""

        def __init__(self, name: str | None) -> None:
            super().__init__()
            self.name = name

    class ExperimentChosen(Message):
        """Enter was pressed on an experiment (opens its trial table)."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("enter", "select_cursor", "Trials"),  # opens the trial table
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._rows: list[tuple[object, ...]] = []
        self._names: list[str] = []
        self._selected: str | None = None
        self.compact = False  # narrow terminals: experiment, state, n/N, best, ETA only

    def on_mount(self) -> None:
        self._add_columns()
        self.border_title = "Queue"

    def _add_columns(self) -> None:
        for label in self.columns_shown():
            shown = COMPACT_HEADERS.get(label, label) if self.compact else label
            self.add_column(shown, key=label)

    def columns_shown(self) -> tuple[str, ...]:
        return COMPACT if self.compact else COLUMNS

    def _shown(self, row: tuple[object, ...]) -> list[object]:
        cells = _cells(row, compact=self.compact)
        if not self.compact:
            return cells
        return [cells[COLUMNS.index(c)] for c in COMPACT]

    def set_compact(self, compact: bool) -> bool:
        """Fewer, narrower columns, so a row's trials, best and ETA stay in view.
        True when it changed (the rows must then be drawn again: update_from)."""
        if compact == self.compact:
            return False
        self.compact = compact
        self.clear(columns=True)
        self._add_columns()
        self._rows, self._names = [], []  # the next update_from adds every row again
        return True

    @property
    def selected(self) -> str | None:
        return self._selected

    def update_from(self, state: CampaignState) -> None:
        rows = [_row(e) for e in state.queue]
        names = [e.name for e in state.queue]
        workers = "paused all" if state.paused_all else plural(state.workers, "worker")
        set_border(self, title=f"Queue · {plural(len(names), 'experiment')} · {workers}")
        if rows == self._rows and names == self._names:
            return
        if names == self._names:
            # Same experiments in the same order: update the cells that changed, in
            # place (a rebuild costs a relayout of the whole screen).
            for name, old, new in zip(names, self._rows, rows, strict=True):
                if old != new:
                    for column, (a, b) in zip(
                        self.columns_shown(),
                        zip(self._shown(old), self._shown(new), strict=True),
                        strict=True,
                    ):
                        if a != b:
                            self.update_cell(name, column, b, update_width=True)
            self._rows = rows
            return
        keep = self._selected
        self._rows, self._names = rows, names
        self.clear()
        for name, row in zip(names, rows, strict=True):
            self.add_row(*self._shown(row), key=name)
        if not names:
            self._set_selected(None)
            return
        index = names.index(keep) if keep in names else 0
        self.move_cursor(row=index, animate=False)
        self._set_selected(names[index])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        name = event.row_key.value if event.row_key is not None else None
        self._set_selected(name)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.ExperimentChosen(event.row_key.value))

    def _set_selected(self, name: str | None) -> None:
        if name != self._selected:
            self._selected = name
            self.post_message(self.ExperimentHighlighted(name))


def _row(e: ExperimentStatus) -> tuple[object, ...]:
    done = e.n_complete + e.n_pruned + e.n_failed
    return (
        e.position + 1,
        e.name,
        e.budget,
        e.horizon,
        e.state,
        done,
        e.n_trials,
        e.n_running,
        e.best_value,
        e.eta_s,
        e.needs_bigger,
    )


def _cells(row: tuple[object, ...], *, compact: bool = False) -> list[object]:
    pos, name, budget, horizon, state, done, total, running, best, eta, bigger = row
    assert isinstance(done, int) and isinstance(total, int) and isinstance(running, int)
    if compact:  # 40 columns: every cell as short as it can be read
        eta_short = duration(eta)[:-3] if isinstance(eta, int | float) and eta >= 60 else "-"
        return [
            str(pos),
            str(name),
            str(budget),
            str(horizon),
            Text(SHORT_STATES.get(str(state), str(state)), state_text(str(state)).style),
            f"{done}/{total}",
            Text(value(best if isinstance(best, float) else None), justify="right"),
            eta_short or "-",
        ]
    trials = bar(done, total, 8)
    trials.append(f" {done}/{total}")
    if running:
        trials.append(f" +{running}", style="green")
    if bigger:  # waiting trials no live machine can fit (engine.worker.fit)
        trials.append(f" {bigger} need a bigger device", style="yellow")
    eta_text = duration(eta) if isinstance(eta, int | float) else "-"
    return [
        str(pos),
        str(name),
        str(budget),
        str(horizon),
        state_text(str(state)),
        trials,
        Text(value(best if isinstance(best, float) else None), justify="right"),
        eta_text,
    ]
