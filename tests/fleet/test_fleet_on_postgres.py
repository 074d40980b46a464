"""A fleet on a real PostgreSQL: two `hpotui worker` nodes with different memory limits
and an engine (`python -m engine`, commands on its stdin) share one campaign.

Proves: the architectures that fit only the big node run only there, and nothing is a
counted failure for fit; the small node, drained from the engine side mid-campaign
(a `control_host` command), obeys within a trial and starts no trial afterwards while the
big node and the engine finish the campaign; `hpotui hosts --json` lists all three
machines with their states; every front-end's log says who drained which host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from engine import protocol as p
from engine.campaign.config import load_campaign
from engine.fleet.host_records import host_views
from engine.fleet.setup import create_campaign
from engine.storage.backend import open_storage
from engine.storage.queue import T_COUNTED, T_DEFERRED, T_HOST, CampaignQueue, is_counted
from engine.worker.fit import needs_bytes
from engine.worker.heartbeat import HeartbeatSettings
from tests.fleet.conftest import FIXTURES, build_tiny, copy_machine

HPOTUI = [sys.executable, "-m", "hpotui.cli"]
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(1200)]


def _wait(what: str, check: Callable[[], Any], timeout: float = 400.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _env(home: Path, host: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "HPOTUI_HOME": str(home), "HPOTUI_HOST": host, **extra}


def _hosts_json(home: Path, url: str) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "hpotui.cli", "hosts", "--json", "--campaign", "fleet"],
        cwd=home,
        env=_env(home, "laptop", HPOTUI_STORAGE=url),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return {h["host"]: h for h in json.loads(done.stdout)["hosts"]}


def test_nodes_split_work_by_fit_and_one_is_drained(pg_url: str, tmp_path: Path) -> None:
    home_a = tmp_path / "machine-a"
    (home_a / "outputs").mkdir(parents=True)
    build_tiny(home_a)
    home_b = copy_machine(home_a, tmp_path / "machine-b")
    home_c = copy_machine(home_a, tmp_path / "machine-c")
    config = home_c / "fleet.toml"
    config.write_text((FIXTURES / "fleet_by_fit.toml").read_text())

    # the campaign, created as `hpotui worker CONFIG` does (heartbeat 2 s, grace 60 s: a starved
    # worker on a loaded machine must not look dead)
    os.environ["HPOTUI_HOME"] = str(home_c)
    try:
        storage = open_storage(pg_url, heartbeat_interval=None)
        create_campaign(storage, load_campaign(config), HeartbeatSettings(2, 60))
    finally:
        del os.environ["HPOTUI_HOME"]
    queue = CampaignQueue(storage, "fleet")
    entry = queue.entries()[0]
    needs = [needs_bytes(entry, i, "cpu") for i in range(len(entry.grid))]
    ordered = sorted(set(needs))  # two clusters (d_model 4 and 8): split at the gap
    gap = max(range(1, len(ordered)), key=lambda i: ordered[i] - ordered[i - 1])
    small = ordered[gap] - 1
    big = 4 * max(needs)  # room for whole batches
    big_only = {i for i, n in enumerate(needs) if n > small}
    assert big_only and len(big_only) < len(needs)

    logs: dict[str, Any] = {}

    def node(home: Path, host: str, limit: int) -> subprocess.Popen[bytes]:
        logs[host] = (tmp_path / f"{host}.out").open("wb"), (tmp_path / f"{host}.err").open("wb")
        return subprocess.Popen(
            [
                *HPOTUI,
                "worker",
                "--campaign",
                "fleet",
                "--workers",
                "1",
                "--threads",
                "1",
                "--memory-limit",
                str(limit),
            ],
            cwd=home,
            env=_env(home, host, HPOTUI_STORAGE=pg_url),
            stdout=logs[host][0],
            stderr=logs[host][1],
        )

    b = node(home_b, "machine-b", small)  # alone first: it gets trials on a loaded machine

    def trials_on(host: str) -> list[Any]:
        return [t for t in queue.entries()[0].trials if t.user_attrs.get(T_HOST) == host]

    try:
        _wait("a trial on machine-b", lambda: any(is_counted(t) for t in trials_on("machine-b")))
    except AssertionError:
        b.kill()
        raise
    a = node(home_a, "machine-a", big)
    c_err = (tmp_path / "machine-c.err").open("wb")
    c = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "--config",
            str(config),
            "--storage",
            pg_url,
            "--workers",
            "1",
            "--no-monitor",
        ],  # the engine's one local worker: small
        cwd=home_c,
        env=_env(home_c, "machine-c", HPOTUI_MEMORY_LIMIT=str(small)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=c_err,
    )
    events: list[p.Event] = []

    def read() -> None:
        assert c.stdout is not None
        for line in c.stdout:
            events.append(p.decode_event(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        hosts = _wait("three host records", lambda: len(host_views(storage, queue)) == 3)
        assert hosts

        # drain machine-b from the engine side
        assert c.stdin is not None
        command = p.ControlHost("t-1", "machine-b", "drain")
        c.stdin.write((p.encode(command) + "\n").encode())
        c.stdin.flush()
        reply = _wait(
            "the engine's reply",
            lambda: next(
                (e for e in events if isinstance(e, p.Reply) and e.command_id == "t-1"), None
            ),
        )
        assert reply.ok, reply.message

        def b_obeyed() -> dict[str, Any] | None:
            views = {v["host"]: v for v in host_views(storage, queue)}
            view = views.get("machine-b", {})
            command = view.get("command") or {}
            return view if command.get("action") == "drain" else None

        obeyed_view = _wait("machine-b to obey the drain", b_obeyed, timeout=120)
        obeyed_at = obeyed_view["last_seen"]
        listed = _hosts_json(home_c, pg_url)
        assert set(listed) == {"machine-a", "machine-b", "machine-c"}
        assert listed["machine-b"]["status"] in ("draining", "drained")
        assert listed["machine-b"]["command"]["by"].endswith("@machine-c")
        assert listed["machine-a"]["status"] in ("working", "idle")
        assert listed["machine-c"]["role"] == "engine"
        assert listed["machine-b"]["memory_bytes"] == small

        assert c.wait(600) == 0, (tmp_path / "machine-c.err").read_text()
        assert a.wait(120) == 0, (tmp_path / "machine-a.err").read_text()
        assert b.wait(120) == 0, (tmp_path / "machine-b.err").read_text()
    finally:
        for process in (a, b, c):
            if process.poll() is None:
                process.kill()
                process.wait()
        reader.join(5)

    # --- the campaign: n_trials counted, nothing a counted failure for fit
    entry = queue.entries()[0]
    assert entry.stored_state == "done"
    assert sum(is_counted(t) for t in entry.trials) == entry.config.n_trials
    assert not [t for t in entry.trials if t.user_attrs.get(T_COUNTED)]
    assert not [t for t in entry.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    ran = [t for t in entry.trials if t.state == TrialState.COMPLETE]
    for t in ran:  # what only the big node fits ran only there
        if int(t.params["arch"]) in big_only:
            assert t.user_attrs[T_HOST] == "machine-a", (t.number, t.params)
    assert any(int(t.params["arch"]) in big_only for t in ran)
    deferred = [t for t in entry.trials if t.user_attrs.get(T_DEFERRED)]
    assert all(t.user_attrs.get(T_HOST) in ("machine-b", "machine-c") for t in deferred)

    # --- the drain: machine-b started at most one trial after it obeyed (its one worker
    # may be inside `ask` when the hold arrives: "within one trial", however slow the
    # machine), and the others went on
    on_b = [t for t in entry.trials if t.user_attrs.get(T_HOST) == "machine-b"]
    late = [t for t in on_b if t.datetime_start and t.datetime_start.timestamp() > obeyed_at]
    assert len(late) <= 1, [(t.number, t.state, t.datetime_start) for t in late]
    after = [t for t in ran if t.datetime_start and t.datetime_start.timestamp() > obeyed_at + 1]
    assert after and {t.user_attrs[T_HOST] for t in after} <= {"machine-a", "machine-c"}

    # --- every machine listed, in its final state; the log says who drained machine-b
    listed = _hosts_json(home_c, pg_url)
    assert {h: v["status"] for h, v in listed.items()} == {
        "machine-a": "exited",
        "machine-b": "exited",
        "machine-c": "exited",
    }
    said = [e.message for e in events if isinstance(e, p.LogLine)]
    assert any("machine-b" in m and "drain" in m and "@machine-c" in m for m in said), said
    hosts_events = [e for e in events if isinstance(e, p.HostsChanged)]
    assert any(len(e.hosts) == 3 for e in hosts_events)
    b_out = (tmp_path / "machine-b.out").read_text()
    assert "drain (by " in b_out
