"""The queue: one row per experiment in run order, the selection the keys act on."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from engine.protocol import ExperimentStatus
from hpotui.state import CampaignState
from hpotui.widgets.format import bar, duration, set_border, state_text, value

COLUMNS = ("#", "experiment", "budget", "h", "state", "trials", "best", "ETA")


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
        ("j", "cursor_down", "Down"),
        ("k", "cursor_up", "Up"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._rows: list[tuple[object, ...]] = []
        self._names: list[str] = []
        self._selected: str | None = None

    def on_mount(self) -> None:
        for label in COLUMNS:
            self.add_column(label, key=label)
        self.border_title = "Queue"

    @property
    def selected(self) -> str | None:
        return self._selected

    def update_from(self, state: CampaignState) -> None:
        rows = [_row(e) for e in state.queue]
        names = [e.name for e in state.queue]
        workers = "paused all" if state.paused_all else f"{state.workers} worker(s)"
        set_border(self, title=f"Queue · {len(names)} experiments · {workers}")
        if rows == self._rows and names == self._names:
            return
        if names == self._names:
            # Same experiments in the same order: update the cells that changed, in
            # place (a rebuild costs a relayout of the whole screen).
            for name, old, new in zip(names, self._rows, rows, strict=True):
                if old != new:
                    for column, (a, b) in zip(
                        COLUMNS, zip(_cells(old), _cells(new), strict=True), strict=True
                    ):
                        if a != b:
                            self.update_cell(name, column, b, update_width=True)
            self._rows = rows
            return
        keep = self._selected
        self._rows, self._names = rows, names
        self.clear()
        for name, row in zip(names, rows, strict=True):
            self.add_row(*_cells(row), key=name)
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


def _cells(row: tuple[object, ...]) -> list[object]:
    pos, name, budget, horizon, state, done, total, running, best, eta, bigger = row
    assert isinstance(done, int) and isinstance(total, int) and isinstance(running, int)
    trials = bar(done, total, 8)
    trials.append(f" {done}/{total}")
    if running:
        trials.append(f" +{running}", style="green")
    if bigger:  # waiting trials no live machine can fit (engine.fleet.fit)
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
