"""Files for humans under outputs/<campaign>/: derived from the storage, never the truth.

- `<experiment>/trials.parquet` and `trials.csv`: one row per trial (params, architecture,
  parameter count, value, metrics, duration, state, worker), rewritten atomically
  (temp file, then rename) after every finished trial, so a reader never sees half a file.
- `<experiment>/best.json`: the best trial with the experiment's resolved config.
- `<experiment>/log.txt`: one appended line per trial start / finish.
- `events.jsonl`: every protocol event, appended (a re-attached front-end replays it).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial

from engine import protocol as p
from engine.atomic import write_atomic
from engine.storage.queue import (
    T_COUNTED,
    T_EXTREME,
    T_HOST,
    T_INTERRUPTED,
    T_REASON,
    T_RETRY_OF,
    T_SURPLUS,
    T_WORKER,
    Entry,
    best_trial,
)

EVENTS_FILE = "events.jsonl"


def _state(t: FrozenTrial) -> str:
    name = t.state.name.lower()
    if name == "fail":
        if t.user_attrs.get(T_COUNTED):
            return "failed"
        if t.user_attrs.get(T_SURPLUS):
            return "surplus"
        return "interrupted"
    return name


def trial_rows(trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    rows = []
    for t in trials:
        arch = t.user_attrs.get("architecture") or {}
        row: dict[str, Any] = {
            "trial": t.number,
            "state": _state(t),
            "value": t.value if t.values else None,
            "d_model": arch.get("d_model"),
            "n_layers": arch.get("n_layers"),
            "n_heads": arch.get("n_heads"),
            "d_ff": arch.get("d_ff"),
            "n_params": t.user_attrs.get("n_params"),
            "duration_s": (
                (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start
                else None
            ),
            "started": t.datetime_start.isoformat() if t.datetime_start else None,
            "finished": t.datetime_complete.isoformat() if t.datetime_complete else None,
            "worker": t.user_attrs.get(T_WORKER),
            "host": t.user_attrs.get(T_HOST),
            "forced_extreme": t.user_attrs.get(T_EXTREME),
            "retry_of": t.user_attrs.get(T_RETRY_OF),
            "reason": t.user_attrs.get(T_REASON) or t.user_attrs.get(T_INTERRUPTED) or "",
            "best_epoch": t.user_attrs.get("best_epoch"),
            "epochs_run": t.user_attrs.get("epochs_run"),
        }
        for k, v in t.params.items():
            row[f"param_{k}"] = v
        for k, v in (t.user_attrs.get("metrics") or {}).items():
            row[f"val_{k}"] = v
        rows.append(row)
    return rows


def best_record(entry: Entry) -> dict[str, Any] | None:
    best = best_trial(entry.trials)
    if best is None:
        return None
    return {
        "experiment": entry.name,
        "study": entry.study_name,
        "trial": best.number,
        "value": best.value,
        "params": best.params,
        "architecture": best.user_attrs.get("architecture"),
        "n_params": best.user_attrs.get("n_params"),
        "metrics": best.user_attrs.get("metrics"),
        "train_params": best.user_attrs.get("train_params"),
        "n_complete": entry.counts.complete,
        "n_trials": entry.config.n_trials,
        "config": entry.config.to_dict(),
    }


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


class Outputs:
    """Writes a campaign's human-readable files. Thread-safe for the event log."""

    def __init__(self, campaign_dir: Path) -> None:
        self.dir = campaign_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._events = open(self.dir / EVENTS_FILE, "a", encoding="utf-8")  # noqa: SIM115

    def append_event(self, event: p.Event) -> None:
        line = p.encode(event) + "\n"
        with self._lock:
            self._events.write(line)
            self._events.flush()

    def log(self, experiment: str, line: str) -> None:
        path = self.dir / experiment / "log.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line.rstrip("\n") + "\n")

    def write_experiment(self, entry: Entry) -> None:
        """Rewrite the experiment's trials table and best.json from its study."""
        folder = self.dir / entry.name
        frame = pd.DataFrame(trial_rows(entry.trials))
        write_atomic(folder / "trials.csv", lambda tmp: frame.to_csv(tmp, index=False))
        write_atomic(folder / "trials.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
        best = best_record(entry)
        if best is not None:
            text = json.dumps(best, indent=2, default=str)
            write_atomic(folder / "best.json", lambda tmp: _write_text(tmp, text))

    def close(self) -> None:
        with self._lock:
            self._events.close()


def read_events(campaign_dir: Path) -> list[p.Event]:
    """The campaign's event log; unreadable lines (a torn last line) are skipped."""
    path = campaign_dir / EVENTS_FILE
    if not path.exists():
        return []
    events: list[p.Event] = []
    with open(path, "rb") as f:
        for line in f:
            try:
                events.append(p.decode_event(line))
            except p.ProtocolError:
                continue
    return events
