"""Crash safety: kill -9 the engine at random moments of a real campaign, restart it each
time, and prove that no completed trial is lost or duplicated, the queue keeps its order
and states, interrupted trials are re-run without counting, and the campaign completes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest
from enginehelp import EngineProcess, copy_fixture, worker_pids

from engine import protocol as p
from engine.filelock import held
from engine.process.outputs import read_events
from engine.storage.backend import open_storage
from engine.storage.queue import T_COUNTED, T_INTERRUPTED, T_RETRY_OF, CampaignQueue
from engine.storage.recovery import pid_alive, trial_params

pytestmark = pytest.mark.slow

KILLS = 7  # with seed 4: every kind of moment at least once (asserted)
COMPLETE = optuna.trial.TrialState.COMPLETE


def _kill_at_random(engine: EngineProcess, rng: random.Random) -> str:
    """Kill the engine at one of several kinds of moments; returns which."""
    moment = rng.choice(["startup", "after_hello", "mid_trial", "mid_trial", "after_trial"])
    try:
        if moment == "startup":
            time.sleep(rng.uniform(0.2, 2.0))
        elif moment == "after_hello":
            if not engine.seen(lambda e: isinstance(e, p.Hello)):
                engine.wait_for(lambda e: isinstance(e, p.Hello), 30)
            time.sleep(rng.uniform(0.0, 1.5))
        elif moment == "mid_trial":
            engine.wait_for(lambda e: isinstance(e, p.TrialStarted), 30)
            time.sleep(rng.uniform(0.0, 0.4))
        else:
            engine.wait_for(lambda e: isinstance(e, p.TrialFinished), 30)
            time.sleep(rng.uniform(0.0, 0.2))
    except (EOFError, TimeoutError):
        pass  # finished (or slow) before the moment came: kill anyway
    pid = engine.proc.pid
    engine.kill()
    # the engine's workers die with it (Linux death signal) or notice the orphaning
    deadline = time.monotonic() + 10
    while worker_pids(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker_pids(pid) == [], "a worker outlived its engine"
    return moment


@pytest.mark.timeout(1200)  # a safety net: under load (2 cores shared) it runs for minutes
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(workspace: Path) -> None:
    rng = random.Random(4)
    config = copy_fixture(workspace, "micro.toml")
    # more trials than kills, so that most kills land while trials run
    config.write_text(config.read_text().replace("n_trials = 4", "n_trials = 7"))
    completed: dict[tuple[str, int], float | None] = {}

    # A user's reorder must survive every crash.
    first = EngineProcess(config, workspace, "--workers", "2")
    first.wait_for(lambda e: isinstance(e, p.Hello), 300)
    assert first.command(p.Move(id="m", experiment="1.8K_h2", to=0)).ok
    runs = [first]
    moments = []
    for _ in range(KILLS):
        engine = runs[-1]
        moments.append(_kill_at_random(engine, rng))
        for e in engine.events:
            if isinstance(e, p.TrialFinished) and e.state == "complete":
                completed[(e.experiment, e.trial)] = e.value
        runs.append(EngineProcess(config, workspace, "--workers", "2"))

    assert set(moments) == {"startup", "after_hello", "mid_trial", "after_trial"}, moments
    final = runs[-1]
    # and a worker killed mid-trial: the engine records its trial and starts another worker
    killed_worker = False
    try:
        final.wait_for(lambda e: isinstance(e, p.TrialStarted), 300)
        victims = worker_pids(final.proc.pid)
        if victims:
            os.kill(victims[0], signal.SIGKILL)
            killed_worker = True
    except EOFError:
        pass  # the campaign finished first
    assert final.drain(timeout=90) == 0, "".join(final.stderr[-20:])
    if killed_worker:
        assert final.seen(lambda e: isinstance(e, p.LogLine) and "exited with code -9" in e.message)
    bye = final.events[-1]
    assert isinstance(bye, p.Bye) and bye.reason == "campaign complete"
    for e in final.events:
        if isinstance(e, p.TrialFinished) and e.state == "complete":
            completed[(e.experiment, e.trial)] = e.value

    storage = open_storage(str(workspace / "outputs" / "micro" / "optuna.journal"))
    queue = CampaignQueue(storage, "micro")
    entries = queue.entries()
    assert [e.name for e in entries] == ["1.8K_h2", "1.8K_h1"]  # order kept
    assert [e.stored_state for e in entries] == ["done", "done"]
    for entry in entries:
        done = [t for t in entry.trials if t.state == COMPLETE]
        # exactly n_trials complete: nothing duplicated, nothing missing
        assert len(done) == entry.config.n_trials
        numbers = {t.number for t in done}
        # every completion a front-end was told about is in the storage, same value
        for (experiment, number), value in completed.items():
            if experiment == entry.name:
                assert number in numbers
                assert next(t.value for t in done if t.number == number) == value
        # interrupted trials are uncounted failures and were re-run with the same params
        by_number = {t.number: t for t in entry.trials}
        for t in entry.trials:
            if T_RETRY_OF in t.user_attrs:
                original = by_number[t.user_attrs[T_RETRY_OF]]
                assert original.state == optuna.trial.TrialState.FAIL
                assert not original.user_attrs.get(T_COUNTED)
                # the retry is enqueued with exactly what the original was to run with
                # (all of it, or only part, or nothing when it was killed inside `ask`;
                # the search samples the rest)
                assert t.system_attrs.get("fixed_params", {}) == trial_params(original)
                if t.state == COMPLETE:
                    assert trial_params(original).items() <= t.params.items()
        assert not any(t.state == optuna.trial.TrialState.RUNNING for t in entry.trials)
        # the trials table holds each completed trial once
        table = (workspace / "outputs" / "micro" / entry.name / "trials.csv").read_text()
        rows = [r for r in table.splitlines()[1:] if ",complete," in r]
        assert len(rows) == entry.config.n_trials

    # some kill landed mid-trial, so recovery was exercised
    assert any(T_RETRY_OF in t.user_attrs for e in entries for t in e.trials)

    # the event log kept appending across crashes; later lines are all readable
    assert sum(isinstance(e, p.Hello) for e in read_events(workspace / "outputs" / "micro")) >= 2
    assert not [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if "engine.worker.pool" in (proc.info.get("cmdline") or [])
        and str(workspace) in " ".join(proc.info.get("cmdline") or [])
    ]
    print("kill moments:", moments)


def test_a_worker_killed_inside_ask_does_not_hold_the_campaign_end(workspace: Path) -> None:
    """A worker killed between Optuna's `ask` and recording its pid leaves a RUNNING trial
    without a pid. The engine must record it interrupted when it reaps the worker: left
    RUNNING, the experiment never became done and the engine never exited."""
    config = copy_fixture(workspace, "micro.toml")
    config.write_text(config.read_text().replace("n_trials = 4", "n_trials = 30"))
    engine = EngineProcess(config, workspace, "--workers", "2")
    started = engine.wait_for(lambda e: isinstance(e, p.TrialStarted), 300)
    assert isinstance(started, p.TrialStarted)
    journal = workspace / "outputs" / "micro" / "optuna.journal"
    storage = open_storage(str(journal))
    study = optuna.load_study(study_name=f"micro.{started.experiment}", storage=storage)
    with held(f"{journal}.ask.lock"):  # as a worker asks: the trial is RUNNING, no pid yet
        orphan = study.ask()
    victim = worker_pids(engine.proc.pid)[0]
    os.kill(victim, signal.SIGKILL)  # ... and the worker dies there

    assert engine.drain(timeout=90) == 0, "".join(engine.stderr[-20:])
    bye = engine.events[-1]
    assert isinstance(bye, p.Bye) and bye.reason == "campaign complete"
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert trials[orphan.number].state == optuna.trial.TrialState.FAIL
    assert trials[orphan.number].user_attrs.get(T_INTERRUPTED)
    assert [t for t in trials.values() if t.user_attrs.get(T_RETRY_OF) == orphan.number]
    complete = [t for t in trials.values() if t.state == COMPLETE]
    assert len(complete) == 30


def test_a_zombie_worker_is_dead_to_recovery() -> None:
    """A killed worker stays a zombie until something reaps it (the engine that started
    it is gone; a container's init can take seconds). Taken for alive, its trial stayed
    RUNNING and its experiment never ended (seen in the SIGKILL test above)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    try:
        start = psutil.Process(child.pid).create_time()
        assert pid_alive(child.pid, start)
        deadline = time.monotonic() + 60  # a safety net: it exits in half a second
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.05)
        assert not pid_alive(child.pid, start)  # exited, not yet reaped
    finally:
        child.wait()
