"""A campaign survives its PostgreSQL server going away, and loses no event.

On a server of its own, the test creates campaign "dist" (3 experiments x 8 trials,
heartbeat 1 s, grace 6 s, paused), starts an engine (`hpotui --batch --json`, machine c,
one local worker, drained) and a second node (`hpotui worker`, machine b, one worker),
lets the node count a trial before the engine resumes (the node held until the engine has
counted one too), then, once each machine has counted trials, stops the server for 15 s (`pg_ctl stop -m fast`, start) and later
restarts it fast (`pg_ctl restart -m fast`). It proves: both processes, each part of
the campaign, wait the outages out and exit 0; every experiment is done with exactly
n_trials counted trials; no trial is RUNNING or WAITING; no trial was counted failed (an
outage never fails a trial); each interrupted trial (if any) was re-run once; the outage
was announced and its end too; and the engine's events.jsonl and its batch output report
every finished trial in the storage, local and remote, once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from engine import protocol as p
from engine.campaign.config import load_campaign
from engine.fleet.host_records import read_records, send_command
from engine.fleet.setup import create_campaign
from engine.storage.backend import open_storage
from engine.storage.queue import T_COUNTED, T_HOST, T_RETRY_OF, CampaignQueue, is_counted
from engine.storage.recovery import PIDLESS_MARGIN_ENV, needs_retry
from engine.storage.trial_records import trial_state
from engine.worker.heartbeat import HeartbeatSettings
from tests.fleet.conftest import FIXTURES, build_tiny, copy_machine
from tests.fleet.pg_server import find_bin_dir, restartable_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(1200)]
N_TRIALS = 8  # per experiment: 24 trials, enough to span both outages on a loaded machine
OUTAGE_S = 15
HOSTS = ("machine-b", "machine-c")


def _wait(what: str, check: Callable[[], Any], timeout: float = 600.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _start(home: Path, host: str, args: list[str], logs: Path, env: dict[str, str]) -> Any:
    environment = {**os.environ, "HPOTUI_HOME": str(home), "HPOTUI_HOST": host, **env}
    with (logs / f"{host}.out").open("ab") as out, (logs / f"{host}.err").open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "hpotui.cli", *args],
            cwd=home,
            env=environment,
            stdout=out,
            stderr=err,
        )


def test_campaign_waits_out_a_database_stop_and_a_fast_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    logs = tmp_path / "logs"
    logs.mkdir()
    home_b = tmp_path / "machine-b"
    (home_b / "outputs").mkdir(parents=True)
    build_tiny(home_b)
    home_c = copy_machine(home_b, tmp_path / "machine-c")
    config = home_c / "dist.toml"
    config.write_text(
        (FIXTURES / "three_by_twenty.toml")
        .read_text()
        .replace("n_trials = 20", f"n_trials = {N_TRIALS}")
    )
    monkeypatch.setenv("HPOTUI_HOME", str(home_c))  # the data whose checksums are recorded

    with restartable_server() as server:
        storage = open_storage(server.url, heartbeat_interval=None)
        create_campaign(storage, load_campaign(config), HeartbeatSettings.of(1, 6))
        queue = CampaignQueue(storage, "dist")
        # No trial starts before the engine is drained: under load the node's worker can
        # take far longer to start than the engine's (which then ran every trial), so
        # the node runs alone until it has counted a trial, then the engine resumes.
        queue.set_paused_all(True)

        def finished() -> int:
            return sum(is_counted(t) for e in queue.entries() for t in e.trials)

        engine = _start(
            home_c,
            "machine-c",
            ["--batch", "--json", "dist.toml", "--storage", server.url, "--workers", "1"],
            logs,
            {"HPOTUI_STORAGE": ""},
        )
        events_file = home_c / "outputs" / "dist" / "events.jsonl"
        _wait("the engine's first snapshot", lambda: '"queue"' in _text(events_file))
        node = _start(
            home_b,
            "machine-b",
            ["worker", "--campaign", "dist", "--workers", "1", "--threads", "1"],
            logs,
            {"HPOTUI_STORAGE": server.url},
        )

        def state_of(host: str) -> str | None:
            return next((r.state for r in read_records(storage, queue) if r.host == host), None)

        def counted_on(*hosts: str, at_least: int = 1) -> bool:
            """`at_least` trials counted, some on each of `hosts` (a condition that stays
            true once met: a trial's RUNNING moments are too short to poll for)."""
            assert engine.poll() is None, "the campaign ended before both machines counted"
            counted = [t for e in queue.entries() for t in e.trials if is_counted(t)]
            return len(counted) >= at_least and set(hosts) <= {
                t.user_attrs.get(T_HOST) for t in counted
            }

        def more_finished(than: int) -> bool:
            assert engine.poll() is None, "the campaign ended before the second outage"
            return finished() >= than + 4

        try:
            _wait("the engine's host record", lambda: state_of("machine-c") is not None)
            send_command(storage, queue, "machine-c", "drain", by="the test")
            _wait("the engine drained", lambda: state_of("machine-c") == "drained")
            queue.set_paused_all(False)
            _wait("a trial counted on machine-b", lambda: counted_on("machine-b"))
            # b holds while c's worker starts (slow under load), so the campaign is not spent
            # before both machines are in it
            send_command(storage, queue, "machine-b", "drain", by="the test")
            _wait("machine-b drained", lambda: state_of("machine-b") == "drained")
            send_command(storage, queue, "machine-c", "resume", by="the test")
            _wait("a trial counted on machine-c", lambda: counted_on("machine-c"))
            send_command(storage, queue, "machine-b", "resume", by="the test")
            _wait("4 counted trials, some on each machine", lambda: counted_on(*HOSTS, at_least=4))
            server.stop("fast")
            time.sleep(OUTAGE_S)
            server.start()
            before = finished()
            _wait("4 more finished trials", lambda: more_finished(before))
            server.restart("fast")
            assert engine.wait(900) == 0, (logs / "machine-c.err").read_text()[-3000:]
            assert node.wait(300) == 0, (logs / "machine-b.err").read_text()[-3000:]
        finally:
            for process in (engine, node):
                if process.poll() is None:
                    process.kill()
                    process.wait()

        entries = queue.entries()
        assert sorted(e.name for e in entries) == ["1K_h1", "1K_h2", "1K_h3"]
        stored: dict[tuple[str, int], str] = {}
        for e in entries:
            assert e.stored_state == "done", (e.name, e.stored_state, e.reason)
            assert sum(is_counted(t) for t in e.trials) == N_TRIALS, e.name
            left = [
                t.number for t in e.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)
            ]
            assert not left, (e.name, left)
            counted_failures = [t.number for t in e.trials if t.user_attrs.get(T_COUNTED)]
            assert not counted_failures, (e.name, counted_failures)
            for t in e.trials:
                if needs_retry(t):  # interrupted: re-run exactly once
                    retries = [r for r in e.trials if r.user_attrs.get(T_RETRY_OF) == t.number]
                    assert len(retries) == 1, (e.name, t.number)
                state = trial_state(t)
                if state is not None:
                    stored[(e.name, t.number)] = state
        hosts = {t.user_attrs.get(T_HOST) for e in entries for t in e.trials if is_counted(t)}
        assert hosts == set(HOSTS)

    # --- the engine's event log and its batch output hold every finished trial, once
    logged = [p.decode_event(line) for line in events_file.read_text().splitlines() if line]
    printed = [
        p.decode_event(line)
        for line in (logs / "machine-c.out").read_text().splitlines()
        if line.strip()
    ]
    for events in (logged, printed):
        done = [(e.experiment, e.trial, e.state) for e in events if isinstance(e, p.TrialFinished)]
        assert len(done) == len({(x, n) for x, n, _ in done}), "a trial reported twice"
        assert {(x, n): s for x, n, s in done} == stored
        outages = [e for e in events if isinstance(e, p.StorageOutage) and e.source == "engine"]
        assert any(not e.reachable for e in outages) and any(e.reachable for e in outages)
        assert isinstance(events[-1], p.Bye) and events[-1].exit_code == 0
    node_lines = (logs / "machine-b.out").read_text()
    assert "storage unreachable, retrying" in node_lines
    assert "storage reachable again" in node_lines


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_past_the_patience_one_line_and_exit_75_then_the_campaign_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine and a node given 3 s of patience both stop with one line and exit 75 when
    the server stays down; once it is back, the same `hpotui --batch` command alone
    completes the campaign with every trial stored before the outage intact and exact
    counts."""
    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    logs = tmp_path / "logs"
    logs.mkdir()
    home_b = tmp_path / "machine-b"
    (home_b / "outputs").mkdir(parents=True)
    build_tiny(home_b)
    home_c = copy_machine(home_b, tmp_path / "machine-c")
    config = home_c / "dist.toml"
    config.write_text(
        (FIXTURES / "three_by_twenty.toml").read_text().replace("n_trials = 20", "n_trials = 4")
    )
    monkeypatch.setenv("HPOTUI_HOME", str(home_c))
    with restartable_server() as server:
        storage = open_storage(server.url, heartbeat_interval=None)
        create_campaign(storage, load_campaign(config), HeartbeatSettings.of(1, 4))
        queue = CampaignQueue(storage, "dist")

        def complete() -> set[int]:
            return {
                t._trial_id
                for e in queue.entries()
                for t in e.trials
                if t.state == TrialState.COMPLETE
            }

        env = {"HPOTUI_STORAGE": server.url}
        batch = ["--batch", "dist.toml", "--storage", server.url, "--workers", "1"]
        engine = _start(home_c, "machine-c", [*batch, "--storage-patience", "3"], logs, env)
        node = _start(
            home_b,
            "machine-b",
            ["worker", "--campaign", "dist", "--workers", "1", "--storage-patience", "3s"],
            logs,
            env,
        )
        processes = [engine, node]
        try:
            _wait("2 complete trials", lambda: len(complete()) >= 2)
            server.stop("fast")
            codes = (engine.wait(300), node.wait(300))
            server.start()
            before = complete()
            assert codes == (75, 75), codes
            for host in ("machine-b", "machine-c"):
                last = (logs / f"{host}.err").read_text().strip().splitlines()[-1]
                assert "unreachable for 3s" in last, last
                assert "run the same command again to resume" in last
                assert "***@" in last and "s3cret" not in last
            assert "Traceback" not in (logs / "machine-b.err").read_text()

            # the same command again; a trial whose worker gave up between `ask` and
            # recording its pid is dead once the patience plus this margin has passed
            # (default 60 s: the test would wait minutes for it)
            resume_env = {**env, PIDLESS_MARGIN_ENV: "10"}
            again = _start(
                home_c, "machine-c", [*batch, "--storage-patience", "3"], logs, resume_env
            )
            processes.append(again)
            assert again.wait(900) == 0, (logs / "machine-c.err").read_text()[-3000:]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()

        entries = queue.entries()
        assert before <= complete()  # every trial stored before the outage is intact
        for e in entries:
            assert e.stored_state == "done", (e.name, e.stored_state)
            assert sum(is_counted(t) for t in e.trials) == 4, e.name
            assert not [t for t in e.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
            assert not [t.number for t in e.trials if t.user_attrs.get(T_COUNTED)]
