"""StreamReader against real subprocesses replaying recorded tool output."""

from __future__ import annotations

import sys
import time

from monitor_helpers import FIXTURES, replay

from engine.monitor.macos_parsers import parse_macmon_line, parse_powermetrics, split_powermetrics
from engine.monitor.stream import StreamReader


def test_latest_macmon_line_is_kept() -> None:
    reader = StreamReader("macmon", replay("macmon_pipe.jsonl", lines=2), parse_macmon_line)
    try:
        assert reader.wait_first(10)
        for _ in range(200):  # both lines arrive almost at once; wait for the second
            value, _ = reader.latest()
            if value and value.gpu_utilization_pct.value and value.gpu_utilization_pct.value > 90:
                break
            time.sleep(0.02)
        value, reason = reader.latest()
        assert reason is None and value is not None
        assert value.temperatures_c["cpu (macmon avg)"].value == 88.41027
    finally:
        reader.close()
    value, reason = reader.latest()
    assert value is None and reason == "macmon stopped"


def test_a_tool_that_dies_says_so_with_its_last_words() -> None:
    reader = StreamReader(
        "macmon", replay("macmon_pipe.jsonl", lines=0, then="exit"), parse_macmon_line
    )
    assert reader.wait_first(10)
    value, reason = reader.latest()
    reader.close()
    assert value is None
    assert reason == "macmon exited with code 3: boom: no IOReport"


def test_missing_tool_and_stale_output() -> None:
    missing = StreamReader("macmon", ["/nonexistent/macmon", "pipe"], parse_macmon_line)
    assert missing.latest()[1] is not None and "could not start" in str(missing.latest()[1])
    now = [0.0]
    stale = StreamReader(
        "macmon",
        replay("macmon_pipe.jsonl", lines=1),
        parse_macmon_line,
        max_age_s=5,
        clock=lambda: now[0],
    )
    try:
        assert stale.wait_first(10)
        assert stale.latest()[0] is not None
        now[0] = 6.0
        assert stale.latest() == (None, "no macmon sample for 6 s")
    finally:
        stale.close()


def test_unparseable_line_is_reported_not_passed_off() -> None:
    code = "import time\nprint('Error: sensor read failed', flush=True)\ntime.sleep(30)\n"
    reader = StreamReader("macmon", [sys.executable, "-c", code], parse_macmon_line)
    try:
        assert reader.wait_first(10)
        value, reason = reader.latest()
        assert value is None and "unparseable output" in str(reason)
    finally:
        reader.close()


def test_powermetrics_records_split_on_headers() -> None:
    reader = StreamReader(
        "powermetrics",
        replay("powermetrics_thermal.txt"),
        parse_powermetrics,
        splitter=split_powermetrics,
    )
    try:
        assert reader.wait_first(10)
        for _ in range(200):
            value, _ = reader.latest()
            if value and value.pressure == "heavy":
                break
            time.sleep(0.02)
        assert reader.latest()[0] is not None and reader.latest()[0].pressure == "heavy"  # type: ignore[union-attr]
    finally:
        reader.close()


def test_a_crashed_tool_is_restarted_after_the_delay(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "crashed-once"
    code = (
        "import pathlib, sys, time\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        "if not m.exists():\n"
        "    m.touch(); sys.stderr.write('IOReport gone\\n'); sys.exit(1)\n"
        f"print(open({str(FIXTURES / 'macmon_pipe.jsonl')!r}).readline(), flush=True)\n"
        "time.sleep(30)\n"
    )
    now = [0.0]
    reader = StreamReader(
        "macmon",
        [sys.executable, "-c", code],
        parse_macmon_line,
        restart_after_s=60,
        clock=lambda: now[0],
    )
    try:
        assert reader.wait_first(10)
        assert reader.latest() == (None, "macmon exited with code 1: IOReport gone")
        now[0] = 59.0
        assert reader.latest()[1] == "macmon exited with code 1: IOReport gone"  # not yet
        now[0] = 60.0
        reader.latest()  # restarts
        assert reader.wait_first(10)
        value, reason = reader.latest()
        assert reason is None and value is not None
    finally:
        reader.close()
    assert reader.latest() == (None, "macmon stopped")
