"""A finished campaign's stored view (engine/storage/campaign_view.py), kept beside its journal
file: `outputs/<campaign>/view.jsonl`, so a dashboard opens a finished campaign without
replaying the whole journal (Optuna replays every operation: one per reported epoch, so
about a second per 20,000, and a long campaign has hundreds of thousands).

Rules:
- Only for a journal file, and only what `stored_view` returned for it: a cache, never a
  second source of truth. Its header holds the journal's identity (inode, size,
  modification time) when it was read; `read_view` returns the events only while the
  journal has that same identity (any append, repair or replacement changes it), and
  only for a campaign finished by `campaign_view.finished`'s rules against the config.
- Written whole or not at all (engine/atomic.py), by the engine when the campaign ends
  and by a front-end after it read a finished campaign from the journal itself; a write
  that fails (a read-only folder) is skipped: the cache is an optimisation.
- No Optuna import: reading it costs a JSON decode, nothing else.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import protocol as p
from engine.atomic import write_atomic

if TYPE_CHECKING:
    from engine.campaign.model import ExperimentConfig
    from engine.storage.queue import Entry

CACHE_FILE = "view.jsonl"
VERSION = 1
TERMINAL = ("done", "failed", "skipped")


def journal_identity(journal: Path) -> list[int] | None:
    try:
        st = journal.stat()
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def write_view(
    folder: Path,
    journal: Path,
    entries: Sequence[Entry],
    events: Sequence[p.Event],
    identity: list[int] | None = None,
) -> bool:
    """Keep `events` (the stored view read from `journal` as `entries`); False if not
    written. `identity`: the journal's before it was read (not written if it changed
    since); None: the caller wrote nothing to it since it read it."""
    now = journal_identity(journal)
    if now is None or (identity is not None and identity != now):
        return False
    identity = now
    header = {
        "version": VERSION,
        "protocol": p.PROTOCOL_VERSION,
        "journal": identity,
        "experiments": {
            e.name: {
                "config": e.config.to_dict(),
                "state": e.stored_state,
                "running": e.counts.running,
            }
            for e in entries
        },
    }
    lines = [json.dumps(header, separators=(",", ":"))] + [p.encode(e) for e in events]

    def write(tmp: Path) -> None:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")

    try:
        write_atomic(folder / CACHE_FILE, write)
    except OSError:
        return False
    return True


def read_view(
    folder: Path, journal: Path, experiments: Sequence[ExperimentConfig]
) -> list[p.Event] | None:
    """The kept view, if it is of this very journal and of a campaign finished for
    `experiments` (the config's); else None."""
    path = folder / CACHE_FILE
    try:
        with path.open("rb") as file:
            header = json.loads(file.readline())
            if not _valid(header, journal, experiments):
                return None
            return [p.decode_event(line) for line in file if line.strip()]
    except (OSError, ValueError, p.ProtocolError):
        return None


def forget(folder: Path) -> None:
    with contextlib.suppress(OSError):
        (folder / CACHE_FILE).unlink()


def _valid(header: Any, journal: Path, experiments: Sequence[ExperimentConfig]) -> bool:
    if not isinstance(header, dict) or header.get("version") != VERSION:
        return False
    if header.get("protocol") != p.PROTOCOL_VERSION:
        return False
    if header.get("journal") != journal_identity(journal):
        return False
    stored = header.get("experiments")
    if not isinstance(stored, dict) or not experiments:
        return False
    for x in experiments:
        entry = stored.get(x.name)
        if not isinstance(entry, dict) or entry.get("config") != _plain(x.to_dict()):
            return False
    return all(
        isinstance(e, dict) and e.get("state") in TERMINAL and e.get("running") == 0
        for e in stored.values()
    )


def _plain(value: Any) -> Any:
    """As JSON gives it back (tuples are lists)."""
    return json.loads(json.dumps(value))
