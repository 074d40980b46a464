"""Three machines on one campaign in a real PostgreSQL: `hpotui worker` and
`hpotui --batch --storage` end to end.

Machines are workspaces with their own copy of the data and their own HPOTUI_HOST: a and
b run `hpotui worker`, c runs `hpotui --batch` (an engine and its local worker). The
test proves: every experiment gets exactly its n_trials counted trials, none lost or
duplicated; a reorder written to the storage by another process is honoured by every
worker at its next trial; a worker killed with SIGKILL has its trial failed through the
heartbeat and re-run elsewhere after the grace period (or closed unrun as surplus when
its experiment filled up meanwhile); a machine whose data differs
refuses to join (exit 2); c's batch shows the trials of a and b with their host; and
the database password appears in no output and no file.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import FrozenTrial, TrialState

from engine import protocol as p
from engine.fleet.host_records import read_records, send_command
from engine.storage.backend import open_storage
from engine.storage.queue import (
    T_COUNTED,
    T_HOST,
    T_INTERRUPTED,
    T_PID,
    T_RETRY_OF,
    T_SURPLUS,
    CampaignQueue,
    is_counted,
)
from engine.storage.recovery import trial_params
from tests.fleet.conftest import FIXTURES, build_tiny, copy_machine
from tests.fleet.pg_server import PASSWORD

# Waits are on conditions; the timeouts are only a safety net, generous because other
# work on a 2-core machine can slow this campaign several times (issue 15).
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(1200)]
N_TRIALS = 20
EXPERIMENTS = ("1K_h1", "1K_h2", "1K_h3")
GRACE_S = 30  # generous: a starved worker on a busy CI machine must not look dead


def _wait(what: str, check: Callable[[], Any], timeout: float = 600.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


class Machine:
    """One `hpotui worker` process in its own workspace, output captured to files."""

    def __init__(self, home: Path, host: str, logs: Path) -> None:
        self.home, self.host = home, host
        self.out, self.err = logs / f"{host}.out", logs / f"{host}.err"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, env: dict[str, str] | None = None) -> None:
        environment = {**os.environ, "HPOTUI_HOME": str(self.home), "HPOTUI_HOST": self.host}
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hpotui.cli", *args],
                cwd=self.home,
                env={**environment, **(env or {})},
                stdout=out,
                stderr=err,
            )

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")


def _trials(queue: CampaignQueue) -> dict[str, list[FrozenTrial]]:
    return {e.name: e.trials for e in queue.entries()}


def test_three_machines_share_a_campaign(pg_url: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    home_a = tmp_path / "machine-a"
    home_a.mkdir()
    (home_a / "outputs").mkdir()
    build_tiny(home_a)
    config = home_a / "dist.toml"
    config.write_text((FIXTURES / "three_by_twenty.toml").read_text())
    a = Machine(home_a, "machine-a", logs)
    b = Machine(copy_machine(home_a, tmp_path / "machine-b"), "machine-b", logs)
    c = Machine(copy_machine(home_a, tmp_path / "machine-c"), "machine-c", logs)
    home_d = tmp_path / "machine-d"
    (home_d / "outputs").mkdir(parents=True)
    build_tiny(home_d, rows=599)  # one day less: other bytes
    d = Machine(home_d, "machine-d", logs)

    # machine a creates the campaign from its config (heartbeat 1 s, grace 3 s) and works
    a.start(
        "worker",
        str(config),
        "--storage",
        pg_url,
        "--workers",
        "1",
        "--threads",
        "1",
        "--heartbeat",
        "1",
        "--grace",
        str(GRACE_S),
    )
    storage = open_storage(pg_url, heartbeat_interval=None)
    queue = CampaignQueue(storage, "dist")
    _wait("the campaign's studies", lambda: len(queue.entries(with_trials=False)) == 3)
    # Machine b must work here (it is killed inside a trial below), but under load its
    # worker can take longer to start than the others need for the whole campaign: they
    # are drained until b has counted a trial.
    queue.set_paused_all(True)
    # b joins by name, the URL in the environment (off its command line); c watches and
    # works with `hpotui --batch` (an engine with one local worker) on the same storage
    b.start(
        "worker",
        "--campaign",
        "dist",
        "--workers",
        "1",
        "--threads",
        "1",
        env={"HPOTUI_STORAGE": pg_url},
    )
    (c.home / "dist.toml").write_text(config.read_text())
    c.start("--batch", "--json", "dist.toml", "--storage", pg_url, "--workers", "1")
    d.start("worker", "--campaign", "dist", "--storage", pg_url)

    def states() -> dict[str, str]:
        return {r.host: r.state for r in read_records(storage, queue)}

    others = ("machine-a", "machine-c")
    _wait("a's and c's host records", lambda: set(others) <= set(states()))
    for host in others:
        send_command(storage, queue, host, "drain", by="the test")
    _wait("a and c drained", lambda: all(states()[host] == "drained" for host in others))
    queue.set_paused_all(False)
    _wait(
        "a trial counted on machine b",
        lambda: any(
            is_counted(t) and t.user_attrs.get(T_HOST) == "machine-b"
            for ts in _trials(queue).values()
            for t in ts
        ),
    )
    for host in others:
        send_command(storage, queue, host, "resume", by="the test")

    # a fourth process (this one) moves the last experiment to the front mid-run
    def h1_started() -> bool:
        return len(_trials(queue)["1K_h1"]) >= 3

    _wait("three trials of 1K_h1", h1_started)
    assert not _trials(queue)["1K_h3"], "1K_h3 started before the move: the test proves nothing"
    queue.move("1K_h3", to=0)
    moved_at = dt.datetime.now()

    # kill machine b with SIGKILL while its worker is inside a trial
    def running_on_b() -> FrozenTrial | None:
        for trials in _trials(queue).values():
            for t in trials:
                attrs = t.user_attrs  # train_params: set just before the first heartbeat
                on_b = t.state == TrialState.RUNNING and attrs.get(T_HOST) == "machine-b"
                if on_b and "train_params" in attrs:
                    return t
        return None

    killed: FrozenTrial | None = None
    for _ in range(50):
        t = _wait("a running trial on machine b", running_on_b, every=0.02)
        pid = int(t.user_attrs[T_PID])
        time.sleep(0.05)
        os.kill(pid, signal.SIGSTOP)  # freeze it, then make sure it is still in that trial
        if storage.get_trial(t._trial_id).state == TrialState.RUNNING:
            assert b.process is not None
            os.kill(b.process.pid, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
            killed = t
            break
        os.kill(pid, signal.SIGCONT)
    assert killed is not None, "never caught machine b inside a trial"
    killed_at = dt.datetime.now()

    assert d.wait(300) == 2
    assert a.wait(900) == 0, a.err.read_text()
    assert c.wait(300) == 0, c.err.read_text()
    b.wait(60)

    # --- exactly n_trials counted per experiment, nothing lost, nothing run twice
    entries = {e.name: e for e in queue.entries()}
    assert sorted(entries) == sorted(EXPERIMENTS)
    by_name = {name: e.trials for name, e in entries.items()}
    for name, e in entries.items():
        assert e.stored_state == "done", (name, e.stored_state)
        assert sum(is_counted(t) for t in e.trials) == N_TRIALS, name
        assert not [t for t in e.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        numbers = [t.number for t in e.trials]
        assert len(numbers) == len(set(numbers))
        for t in e.trials:  # every failure is the killed trial or an unrun surplus ask
            if t.state == TrialState.FAIL and not t.user_attrs.get(T_SURPLUS):
                assert (t.number, t._trial_id) == (killed.number, killed._trial_id), t
    hosts = {t.user_attrs.get(T_HOST) for ts in by_name.values() for t in ts if is_counted(t)}
    assert hosts == {"machine-a", "machine-b", "machine-c"}  # b counted before its kill

    # --- the killed trial: failed by the heartbeat (never counted) and enqueued again once.
    # Its retry either ran after the grace period and counted, or, when the experiment had
    # filled its n_trials meanwhile, was closed as surplus without running (engine.storage.queue
    # closes a done experiment's WAITING trials; a worker that pops one drops it itself).
    home_study = next(
        n for n, ts in by_name.items() if any(t._trial_id == killed._trial_id for t in ts)
    )
    dead = next(t for t in by_name[home_study] if t._trial_id == killed._trial_id)
    assert dead.state == TrialState.FAIL and "stopped beating" in dead.user_attrs[T_INTERRUPTED]
    assert not is_counted(dead)
    retries = [t for t in by_name[home_study] if t.user_attrs.get(T_RETRY_OF) == killed.number]
    assert len(retries) == 1, retries
    retry = retries[0]
    assert trial_params(retry) == killed.params  # the same configuration, enqueued
    if is_counted(retry):
        assert retry.params == killed.params
        assert retry.user_attrs[T_HOST] in ("machine-a", "machine-c")
        assert retry.datetime_start is not None
        assert retry.datetime_start >= killed_at + dt.timedelta(seconds=GRACE_S - 1.5)
    else:
        assert retry.state == TrialState.FAIL and retry.user_attrs.get(T_SURPLUS), retry
        assert "train_params" not in retry.user_attrs, "a surplus retry must never train"

    # --- the reorder: after the move every worker's next trial went to 1K_h3 until it
    # was full, although 1K_h1 and 1K_h2 (earlier in the old order) still had trials to run
    exp_of = {t._trial_id: name for name, ts in by_name.items() for t in ts}
    asked = [t for ts in by_name.values() for t in ts if not t.user_attrs.get(T_SURPLUS)]
    h3 = sorted((t for t in asked if exp_of[t._trial_id] == "1K_h3"), key=_start)
    h3_full = _start(h3[N_TRIALS - 1])
    for pid in {t.user_attrs[T_PID] for t in asked}:
        mine = sorted((t for t in asked if t.user_attrs[T_PID] == pid), key=_start)
        after = [t for t in mine if moved_at < _start(t) <= h3_full]
        stray = [
            (exp_of[t._trial_id], t.number) for t in after[1:] if exp_of[t._trial_id] != "1K_h3"
        ]
        assert not stray, f"worker {pid} ignored the new order for trials {stray}"
    later = [t for t in asked if exp_of[t._trial_id] != "1K_h3" and _start(t) > _start(h3[0])]
    assert later, "1K_h1/1K_h2 had nothing left after the move: nothing jumped the queue"

    # --- outputs: each machine prints its trials with host; d refused in one line
    assert "1K_h3 #" in a.stdout() and "[w1@machine-a]" in a.stdout()
    refusal = d.err.read_text().strip().splitlines()
    assert len(refusal) == 1 and "sha256" in refusal[0] and "TINY/a25/v1" in refusal[0]
    assert "***" in a.stdout()

    # --- c's batch shows the trials other machines ran, with their host, once each
    events = [p.decode_event(line) for line in c.stdout().splitlines() if line.strip()]
    hello, bye = events[0], events[-1]
    assert isinstance(hello, p.Hello) and hello.storage.startswith(
        "postgresql+psycopg://hpotui:***@"
    )
    assert isinstance(bye, p.Bye) and bye.exit_code == 0
    finished = [e for e in events if isinstance(e, p.TrialFinished)]
    foreign = [e for e in finished if e.host != "machine-c"]
    assert {e.host for e in foreign} >= {"machine-a"}
    assert all(e.worker.endswith("@" + e.host) for e in foreign)
    keys = [(e.experiment, e.trial) for e in finished]
    assert len(keys) == len(set(keys))
    for e in foreign:  # as stored: same state and value
        t = next(t for t in by_name[e.experiment] if t.number == e.trial)
        failed = "failed" if t.user_attrs.get(T_COUNTED) else "interrupted"
        expected = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(
            t.state, failed
        )
        assert e.state == expected and e.value == (t.value if expected == "complete" else None)

    # --- the password is in no output and no file written by any machine
    leaks = [
        str(path)
        for path in tmp_path.rglob("*")
        if path.is_file() and PASSWORD.encode() in path.read_bytes()
    ]
    assert not leaks


def _start(t: FrozenTrial) -> dt.datetime:
    assert t.datetime_start is not None
    return t.datetime_start
