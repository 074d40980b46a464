"""The recent past of events.jsonl a front-end replays (hpotui/history.py): only its
tail, only what the log, the thermal state, the last minute of hardware and a running
trial's live curve need (the trials themselves come from the storage)."""

from __future__ import annotations

from pathlib import Path

from engine import protocol as p
from hpotui.history import log_events, recent_events


def write(folder: Path, events: list[p.Event]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.jsonl").write_text("".join(p.encode(e) + "\n" for e in events))


def epoch(trial: int, n: int) -> p.EpochEnded:
    return p.EpochEnded("a", trial, n, 0.7, 0.69, 1.0)


def test_only_what_the_panels_need_is_replayed(tmp_path: Path) -> None:
    snapshot = p.QueueSnapshot(experiments=[], workers=1)
    events: list[p.Event] = [p.Hello("1", "e", "c", "", "", 1, "h", 1), snapshot]
    events += [p.TrialStarted("a", 0, {}, {}, 1, "w1", "h"), epoch(0, 1), epoch(0, 2)]
    events += [p.TrialFinished("a", 0, "failed", None, 2.0, "w1", "h", reason="OOM")]
    events += [p.TrialStarted("a", 1, {}, {}, 1, "w1", "h"), epoch(1, 1)]  # still running
    events += [p.HardwareSampled(sample={"k": i}) for i in range(100)]
    events += [p.LogLine(level="info", message="hello"), snapshot, epoch(1, 2)]
    write(tmp_path, events)
    past = recent_events(tmp_path)
    kinds = [type(e).__name__ for e in past]
    assert "QueueSnapshot" not in kinds and "TrialStarted" not in kinds
    assert "TrialFinished" not in kinds  # a failure is a log line, as the dashboard logs it
    [failure] = [e for e in past if isinstance(e, p.LogLine) and "failed" in e.message]
    assert failure.message == "a trial 0 failed: OOM" and failure.level == "warning"
    assert [(e.trial, e.epoch) for e in past if isinstance(e, p.EpochEnded)] == [(1, 1), (1, 2)]
    hardware = [e for e in past if isinstance(e, p.HardwareSampled)]
    assert [e.sample["k"] for e in hardware] == list(range(40, 100))  # the last minute
    assert isinstance(past[0], p.Hello)
    logs = log_events(past)  # a view from storage keeps the log alone
    assert {type(e) for e in logs} == {p.LogLine}


def test_only_the_tail_is_read(tmp_path: Path) -> None:
    lines = [p.LogLine(level="info", message=f"line {i} " + "x" * 200) for i in range(2000)]
    write(tmp_path, lines)
    past = recent_events(tmp_path, tail_bytes=20_000)
    assert 50 < len(past) < 120  # about 20 kB of 250-byte lines, the first cut one dropped
    assert isinstance(past[-1], p.LogLine) and past[-1].message.startswith("line 1999 ")
    assert recent_events(tmp_path / "missing") == []
