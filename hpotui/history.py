"""The recent past of a campaign's events.jsonl, for a front-end that opens it: the log
lines, errors, thermal changes, the last minute of hardware samples and the epochs of the
trials still running, read from the file's tail.

Trials are not taken from here: the storage holds them (engine/storage/campaign_view.py) and
every front-end gets them from it. So only the tail is read (`TAIL_BYTES`), never a
days-long file whole, and the bulk of it is skipped unparsed: queue snapshots, trial
starts, epochs (except those of trials with no end in the tail: a running trial's train
losses are stored only when it ends). A trial's end is kept only as the log line of a
failure, as the dashboard writes it.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine import protocol as p

EVENTS_FILE = "events.jsonl"
TAIL_BYTES = 2 * 2**20
HARDWARE_KEPT = 60  # the hardware panel shows the last minute (1 Hz)
SKIPPED = (
    b'"type":"queue"}',
    b'"type":"experiment_trials"}',
    b'"type":"reply"}',
    b'"type":"trial_started"}',
)
EPOCH = b'"type":"epoch"}'
FINISHED = b'"type":"trial_finished"}'
HARDWARE = b'"type":"hardware"}'
# the past's events a view from storage keeps (no trial event: the storage has them)
LOG_EVENTS = (
    p.LogLine,
    p.ErrorRaised,
    p.ExperimentStarted,
    p.ExperimentFinished,
    p.ThermalChanged,
    p.StorageOutage,
    p.Bye,
)


def recent_events(campaign_dir: Path, tail_bytes: int = TAIL_BYTES) -> list[p.Event]:
    """The events of the tail of `campaign_dir`/events.jsonl worth replaying, in order."""
    lines = _tail(campaign_dir / EVENTS_FILE, tail_bytes)
    hardware = [i for i, line in enumerate(lines) if line.endswith(HARDWARE)]
    drop = set(hardware[:-HARDWARE_KEPT])
    ended: set[tuple[str, int]] = set()
    events: list[tuple[int, p.Event]] = []
    epochs: list[tuple[int, bytes]] = []
    for i, line in enumerate(lines):
        if i in drop or line.endswith(SKIPPED):
            continue
        if line.endswith(EPOCH):
            epochs.append((i, line))
        elif line.endswith(FINISHED):
            failure = _failure(line, ended)
            if failure is not None:
                events.append((i, failure))
        elif (event := _decode(line)) is not None:
            events.append((i, event))
    for i, line in epochs:
        try:
            data = json.loads(line)
            key = (str(data["experiment"]), int(data["trial"]))
        except (ValueError, KeyError, TypeError):
            continue
        if key not in ended and (event := _decode(line)) is not None:
            events.append((i, event))
    return [event for _, event in sorted(events, key=lambda pair: pair[0])]


def log_events(events: list[p.Event]) -> list[p.Event]:
    """Only what the log shows (a view from storage: trials and hardware are current)."""
    return [e for e in events if isinstance(e, LOG_EVENTS)]


def _failure(line: bytes, ended: set[tuple[str, int]]) -> p.Event | None:
    """Note a trial's end; a failure as the dashboard's log line for it."""
    try:
        data = json.loads(line)
        ended.add((str(data["experiment"]), int(data["trial"])))
    except (ValueError, KeyError, TypeError):
        return None
    if data.get("state") != "failed":
        return None
    why = f": {data['reason']}" if data.get("reason") else ""
    return p.LogLine(
        level="warning",
        message=f"{data['experiment']} trial {data['trial']} failed{why}",
        source="engine",
        ts=float(data.get("ts") or 0.0),
    )


def _decode(line: bytes) -> p.Event | None:
    try:
        return p.decode_event(line)
    except p.ProtocolError:
        return None  # a torn last line, or a type this front-end does not know


def _tail(path: Path, size: int) -> list[bytes]:
    """The whole lines of the last `size` bytes of `path` (none if it is missing)."""
    try:
        with path.open("rb") as file:
            file.seek(0, 2)
            length = file.tell()
            start = max(0, length - size)
            file.seek(start)
            data = file.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first one is cut
    return [line.rstrip(b"\r") for line in lines if line.strip()]
