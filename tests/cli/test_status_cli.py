"""`hpotui status` against a real engine: found by pid, progress from the engine, socket
front-ends counted, and an engine killed with kill -9 no longer listed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import protocol as p
from tests.engine.enginehelp import EngineProcess, copy_fixture

pytestmark = pytest.mark.slow


def _status(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpotui.cli", "status", *args],
        cwd=workspace,
        env={**os.environ, "HPOTUI_HOME": str(workspace)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _front_ends(workspace: Path) -> int:
    [row] = json.loads(_status(workspace, "--json").stdout)["engines"]
    return int(row["front_ends"])


def test_status_lists_a_headless_engine_with_progress_and_front_ends(workspace: Path) -> None:
    assert "no campaign engine running" in _status(workspace).stdout
    engine = EngineProcess(copy_fixture(workspace, "micro.toml"), workspace)
    try:
        assert engine.command(p.PauseAll(id="hold")).ok  # keep it alive while we look
        engine.snapshot()
        result = _status(workspace, "--json")
        assert result.returncode == 0, result.stderr
        [row] = json.loads(result.stdout)["engines"]
        assert row["pid"] == engine.proc.pid and row["campaign"] == "micro"
        assert row["trials_total"] == 8 and 0 <= row["trials_done"] <= 8  # 2 x 4 trials
        assert sorted(row["experiments"]) == ["1.8K_h1", "1.8K_h2"]
        assert row["front_ends"] == 0 and row["spawned_by"] is None  # pytest is no hpotui
        # `hpotui status` itself attached and left: it is not counted the next time (its
        # connection was held open, and one dashboard was counted as two front-ends)
        deadline = time.monotonic() + 60
        while _front_ends(workspace) != 0:
            assert time.monotonic() < deadline, "a front-end that left is still counted"
            time.sleep(0.2)

        # a front-end attached on the socket is counted; the text form says so
        sock = workspace / "outputs" / "micro" / "engine.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(sock))
            client.settimeout(60)
            assert b'"type":"hello"' in client.makefile("rb").readline()  # accepted
            result = _status(workspace)
            [line] = [x for x in result.stdout.splitlines() if "micro" in x]
            assert str(engine.proc.pid) in line and "/8 trials" in line
            assert "1 attached on the socket" in line
        engine.kill()  # kill -9: its engine.pid is left behind
        assert (workspace / "outputs" / "micro" / "engine.pid").exists()
        assert json.loads(_status(workspace, "--json").stdout)["engines"] == []
    finally:
        engine.kill()
