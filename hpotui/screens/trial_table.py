"""One experiment's trials: sortable (o: next column, or click a header) and filterable by
state (f). Updated live while open. Above the table: the experiment's splits (windows,
dates, label rates) and any label-rate drift warning, as stored with its study."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Label

from engine.protocol import ExperimentStatus
from hpotui.state import CampaignState
from hpotui.trial import Trial
from hpotui.widgets.format import count, duration, plural, state_text, value
from hpotui.widgets.key_footer import KeyFooter

COLUMNS = (
    "trial",
    "state",
    "value",
    "AUC",
    "d_model",
    "layers",
    "heads",
    "d_ff",
    "params",
    "epochs",
    "duration",
    "worker",
)
FILTERS = ("all", "running", "complete", "pruned", "failed", "interrupted")


KEYS = (
    ("enter", "the highlighted trial's loss curves (also shown on the main screen after)"),
    ("o", "sort by the next column (or click a header)"),
    ("r", "reverse the order"),
    ("f", "filter by the next state"),
    ("esc / q", "back to the main screen"),
)


class TrialTableScreen(Screen[None]):
    BINDINGS = [
        ("escape,q", "close", "Back"),
        ("o", "sort_next", "Sort"),
        ("r", "reverse", "Reverse"),
        ("f", "filter_next", "Filter"),
        ("question_mark", "help", "Help"),
    ]

    def __init__(self, experiment: str, state: CampaignState) -> None:
        super().__init__()
        self.experiment = experiment
        self.state = state
        self.sort_column = "trial"
        self.descending = False
        self.filter = "all"
        self._key: object = None
        self._ready = False  # columns added (on_mount): rows may be drawn

    def compose(self) -> ComposeResult:
        yield Label(id="trials-title")
        yield Label(id="trials-splits")
        yield DataTable(id="trials", cursor_type="row")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self._ready = True
        self.refresh_rows()
        table.focus()

    def rows(self) -> list[Trial]:
        trials = self.state.trials_of(self.experiment)
        if self.filter != "all":
            trials = [t for t in trials if t.state == self.filter]
        return sorted(trials, key=lambda t: _sort_key(t, self.sort_column), reverse=self.descending)

    def refresh_rows(self) -> None:
        """Draw the rows (again when they changed). A redraw asked for before the
        columns exist waits for on_mount: a burst of events right after Enter (a re-run
        sends many) drew rows into a table with no columns ("More values provided than
        there are columns") and, remembered as drawn, left it empty for good."""
        if not self._ready:
            return
        trials = self.rows()
        key = ([_signature(t) for t in trials], self.sort_column, self.descending, self.filter)
        title = (
            f"{self.experiment}: {plural(len(trials), 'trial')} · state {self.filter} · sorted by "
            f"{self.sort_column} {'desc' if self.descending else 'asc'}"
        )
        self.query_one("#trials-title", Label).update(title)
        self.query_one("#trials-splits", Label).update(
            split_text(self.state.experiment(self.experiment))
        )
        if key == self._key:
            return
        table = self.query_one(DataTable)
        table.clear()
        for trial in trials:
            table.add_row(*_cells(trial), key=str(trial.number))
        self._key = key  # only once drawn

    def action_sort_next(self) -> None:
        self.sort_column = COLUMNS[(COLUMNS.index(self.sort_column) + 1) % len(COLUMNS)]
        self.refresh_rows()

    def action_reverse(self) -> None:
        self.descending = not self.descending
        self.refresh_rows()

    def action_filter_next(self) -> None:
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        self.refresh_rows()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column == self.sort_column:
            self.descending = not self.descending
        self.sort_column = column
        self.refresh_rows()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a trial: its loss curves."""
        from hpotui.screens.trial_curves import TrialCurvesScreen

        event.stop()
        if event.row_key.value is not None:
            number = int(event.row_key.value)
            self.app.push_screen(TrialCurvesScreen(self.experiment, number, self.state))

    def action_help(self) -> None:
        from hpotui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen(KEYS, title="trial table keys"))

    def action_close(self) -> None:
        self.dismiss(None)


def split_text(status: ExperimentStatus | None) -> str:
    """One line per split (windows, first and last day, label rate), then drift lines."""
    if status is None or not status.splits:
        return "splits: not read yet"
    lines = [
        f"{s.get('name', '?'):<5} {s.get('size', 0):>6} windows  {s.get('start') or '-'} .. "
        f"{s.get('end') or '-'}  label rate {value(s.get('label_rate'), 3)}"
        for s in status.splits
    ]
    return "\n".join(lines + [f"! {w}" for w in status.split_warnings])


def _signature(trial: Trial) -> object:
    return (trial.number, trial.state, trial.value, len(trial.epochs), trial.duration_s)


def _sort_key(trial: Trial, column: str) -> Any:
    arch = trial.architecture
    keys: dict[str, Any] = {
        "trial": trial.number,
        "state": trial.state,
        "value": trial.value,
        "AUC": trial.auc,
        "d_model": arch.get("d_model"),
        "layers": arch.get("n_layers"),
        "heads": arch.get("n_heads"),
        "d_ff": arch.get("d_ff"),
        "params": trial.n_params,
        "epochs": len(trial.epochs),
        "duration": trial.duration_s,
        "worker": trial.worker,
    }
    key = keys.get(column)
    # None sorts last whatever the direction of the rest.
    return (key is None, key if key is not None else 0, trial.number)


def _cells(trial: Trial) -> list[object]:
    arch = trial.architecture
    return [
        str(trial.number),
        state_text(trial.state),
        value(trial.value),
        value(trial.auc, 3),
        str(arch.get("d_model", "-")),
        str(arch.get("n_layers", "-")),
        str(arch.get("n_heads", "-")),
        str(arch.get("d_ff", "-")),
        count(trial.n_params or None),
        str(len(trial.epochs)),
        duration(trial.duration_s),
        trial.worker,
    ]
