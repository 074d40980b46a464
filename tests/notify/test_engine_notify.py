"""Notifications from a real campaign: `hpotui --batch` runs the micro campaign with one
working and one refused notify URL; the campaign completes, the working URL gets the
"campaign finished" message, the failure is logged once, and no secret is written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from http_sink import JsonSink, refused_url

from engine import protocol as p
from engine.env_faults import EXIT_ENVIRONMENT
from tests.full_disk import full_disk_env

pytest.importorskip("apprise", reason="apprise is not installed (pip install -e '.[notify]')")
pytestmark = pytest.mark.slow
MICRO = Path(__file__).resolve().parents[1] / "engine" / "fixtures" / "micro.toml"
SECRETS = ("s3cretpass", "alice", "private-token-path")


def test_a_campaign_with_a_bad_url_completes_and_the_good_url_is_told(
    workspace: Path, sink: JsonSink
) -> None:
    bad = refused_url()
    config = workspace / "micro.toml"
    config.write_text(
        MICRO.read_text()
        + f'\n[notify]\nurls = ["{bad}"]\non = ["campaign_done", "experiment_failed"]\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "hpotui.cli", "--batch", str(config), "--json", "--workers", "1"],
        cwd=workspace,
        env={**os.environ, "HPOTUI_HOME": str(workspace), "HPOTUI_NOTIFY_URLS": sink.url()},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr
    events = [p.decode_event(line) for line in run.stdout.splitlines() if line.strip()]
    assert isinstance(events[-1], p.Bye) and events[-1].exit_code == 0

    [message] = sink.wait_for(1)
    assert message["title"] == "hpotui micro: campaign finished: campaign complete"
    assert "campaign micro on " in message["message"]
    best = min(e.value for e in events if isinstance(e, p.TrialFinished) and e.value is not None)
    assert f"campaign best so far: {best:.4f}" in message["message"]

    # the refused URL failed after the last event: logged once, masked, in engine.log
    # (the engine sends its last message after Bye, while `--batch` has already exited)
    engine_log = workspace / "outputs" / "micro" / "engine.log"
    deadline = time.monotonic() + 60
    while "notify:" not in engine_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = engine_log.read_text()
    warnings = [line for line in log.splitlines() if "notify:" in line]
    assert len(warnings) == 1 and "could not send to URL 1 (json://***)" in warnings[0], log
    written = [run.stdout, run.stderr]
    written += [
        f.read_text(errors="replace")
        for f in (workspace / "outputs").rglob("*")
        if f.is_file() and f.suffix in (".jsonl", ".log", ".json")
    ]
    for text in written:
        for secret in SECRETS:
            assert secret not in text


def test_a_worker_node_notifies_its_end(workspace: Path, sink: JsonSink) -> None:
    """`hpotui worker` (no engine on its machine) sends its own messages too."""
    config = workspace / "micro.toml"
    config.write_text(MICRO.read_text())
    journal = workspace / "shared.journal"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpotui.cli",
            "worker",
            "--storage",
            str(journal),
            str(config),
            "--workers",
            "1",
            "--no-monitor",
        ],
        cwd=workspace,
        env={**os.environ, "HPOTUI_HOME": str(workspace), "HPOTUI_NOTIFY_URLS": sink.url()},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr + run.stdout
    [message] = sink.wait_for(1)
    assert message["title"].startswith(
        "hpotui micro: campaign finished: campaign complete (worker node "
    )
    assert "campaign best so far: " in message["message"]


def test_a_campaign_stopped_by_a_full_disk_says_so(
    workspace: Path, sink: JsonSink, tmp_path: Path
) -> None:
    """Exit 3 is not a crash and not the end: the message says the campaign stopped,
    quotes the line naming the path, and the run is resumable."""
    config = workspace / "micro.toml"
    config.write_text(MICRO.read_text())
    env = full_disk_env(tmp_path / "inject", "engine.worker.pool", "/full/disk/optuna.journal")
    env.update(HPOTUI_HOME=str(workspace), HPOTUI_NOTIFY_URLS=sink.url())
    run = subprocess.run(
        [sys.executable, "-m", "hpotui.cli", "--batch", str(config), "--workers", "1"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == EXIT_ENVIRONMENT, run.stdout + run.stderr
    [message] = sink.wait_for(1)
    assert message["title"] == "hpotui micro: campaign stopped"
    assert "cannot write /full/disk/optuna.journal: the disk is full" in message["message"]
    assert "run the same command again to resume" in message["message"]
