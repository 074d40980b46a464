"""The storage password stays off every command line, and `$HPOTUI_STORAGE` is honoured
by every command that takes `--storage`.

A real PostgreSQL campaign: `hpotui --batch` (engine + local workers) and `hpotui worker`
(node + its workers) run while this test reads `/proc/<pid>/cmdline` of every process of
both trees, which is what `ps` shows to every user of the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest

from engine.storage.backend import STORAGE_ENV, child_env, open_storage, requested_storage
from engine.storage.queue import CampaignQueue, is_counted
from tests.fleet.conftest import FIXTURES, build_tiny
from tests.fleet.pg_server import PASSWORD

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(1200)]
N_TRIALS = 3


def _cmdlines(root: psutil.Process) -> dict[int, str]:
    """pid -> command line of `root` and all its descendants, read from /proc (a process
    that has ended but is not yet reaped reads as empty and is left out)."""
    found = {}
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for proc in tree:
        try:
            found[proc.pid] = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # it ended meanwhile
    return {pid: line.decode(errors="replace") for pid, line in found.items() if line}


def _count(seen: dict[int, set[str]], what: str) -> int:
    """How many processes ran `what` (appears in one of their command lines)."""
    return sum(any(what in line for line in lines) for lines in seen.values())


def test_password_is_on_no_command_line_of_a_postgres_campaign(pg_url: str, tmp_path: Path) -> None:
    home = tmp_path / "machine"
    (home / "outputs").mkdir(parents=True)
    build_tiny(home)
    config = home / "secret.toml"
    text = (FIXTURES / "three_by_twenty.toml").read_text()
    config.write_text(
        text.replace('name = "dist"', 'name = "secret"')
        .replace("n_trials = 20", f"n_trials = {N_TRIALS}")
        .replace("horizons = [1, 2, 3]", "horizons = [1, 2]")
    )
    env = {**os.environ, "HPOTUI_HOME": str(home), STORAGE_ENV: pg_url}
    assert PASSWORD not in config.read_text()  # the URL comes from the environment only

    # No trial runs before the node has its worker: under load the engine's workers could
    # otherwise finish the campaign first and the node would find nothing to start.
    queue = CampaignQueue(open_storage(pg_url, heartbeat_interval=None), "secret")
    queue.set_paused_all(True)

    # the same config, no --storage anywhere: an engine with 2 local workers, and a node
    batch = subprocess.Popen(
        [sys.executable, "-m", "hpotui.cli", "--batch", str(config), "--workers", "2"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    roots = [psutil.Process(batch.pid)]
    # every command line each process of both trees showed: a child read between its
    # fork and its exec still shows its parent's, so each pid keeps all it was seen with
    seen: dict[int, set[str]] = {}
    node: subprocess.Popen[str] | None = None
    deadline = time.monotonic() + 900
    paused = True
    while batch.poll() is None and time.monotonic() < deadline:
        if node is None and len(queue.entries(with_trials=False)) == 2:
            node = subprocess.Popen(  # joins once the engine created the studies
                [sys.executable, "-m", "hpotui.cli", "worker", "--campaign", "secret"],
                cwd=home,
                env={**env, "HPOTUI_HOST": "second-machine"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            roots.append(psutil.Process(node.pid))
        if paused and _count(seen, "engine.fleet.node_worker"):
            queue.set_paused_all(False)  # the engine starts its workers now
            paused = False
        for root in roots:
            for pid, line in _cmdlines(root).items():
                seen.setdefault(pid, set()).add(line)
        time.sleep(0.05)
    out, err = batch.communicate(timeout=60)
    assert batch.returncode == 0, out + err
    assert node is not None
    node_out, node_err = node.communicate(timeout=300)
    assert node.returncode == 0, node_out + node_err

    # the processes that carry the URL were seen, and none had the password in its argv
    assert _count(seen, "-m engine --config") >= 1
    assert _count(seen, "engine.worker.pool") >= 2
    assert _count(seen, "engine.fleet.node_worker") >= 1
    leaks = [line for lines in seen.values() for line in lines if PASSWORD in line]
    assert not leaks, leaks

    # ... and the campaign ran on PostgreSQL (the environment's storage), not a journal
    assert not (home / "outputs" / "secret" / "optuna.journal").exists()
    for entry in queue.entries():
        assert sum(is_counted(t) for t in entry.trials) == N_TRIALS, entry.name
    assert PASSWORD not in out + err + node_out + node_err


def test_every_storage_command_resolves_the_environment_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert requested_storage(None) is None  # the campaign's own storage then
    assert requested_storage("flag.journal") == "flag.journal"
    monkeypatch.setenv(STORAGE_ENV, "env.journal")
    assert requested_storage(None) == "env.journal"
    assert requested_storage("flag.journal") == "flag.journal"  # the flag wins
    assert child_env("sqlite:///x.db")[STORAGE_ENV] == "sqlite:///x.db"
    assert STORAGE_ENV not in child_env(None)


def test_check_and_report_honour_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpotui.cli import main

    monkeypatch.setenv("HPOTUI_HOME", str(tmp_path))
    (tmp_path / "outputs").mkdir()
    build_tiny(tmp_path)
    config = tmp_path / "dist.toml"
    config.write_text((FIXTURES / "three_by_twenty.toml").read_text())
    elsewhere = tmp_path / "elsewhere" / "campaign.journal"
    monkeypatch.setenv(STORAGE_ENV, str(elsewhere))
    assert main(["check", str(config)]) == 0
    assert f"storage: {elsewhere}" in capsys.readouterr().out
    # a bad URL in the environment is named as such
    monkeypatch.setenv(STORAGE_ENV, "redis://host/0")
    assert main(["check", str(config)]) == 2
    assert "$HPOTUI_STORAGE: storage redis://host/0: unknown scheme" in capsys.readouterr().err
    # report reads the campaign from the environment's storage
    monkeypatch.setenv(STORAGE_ENV, str(elsewhere))
    optuna.create_study(study_name="other", storage=open_storage(str(elsewhere)))
    assert main(["report", str(config), "--no-retrain"]) == 2
    err = capsys.readouterr().err  # not "no campaign results at outputs/dist/optuna.journal"
    assert "campaign 'dist' has no experiments in this storage" in err
