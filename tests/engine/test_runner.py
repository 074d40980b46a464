"""A real engine subprocess driven over its pipes: every command's effect, bad lines,
re-attaching over the socket, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import optuna
import pytest
from enginehelp import EngineProcess, copy_fixture

from engine import protocol as p
from engine.process.outputs import read_events
from engine.storage.backend import open_storage
from engine.storage.queue import S_ARCHIVED, S_CAMPAIGN, S_EXPERIMENT
from hpotui.link import EngineLink

pytestmark = pytest.mark.slow


def _order(snap: p.QueueSnapshot) -> list[str]:
    return [e.name for e in sorted(snap.experiments, key=lambda e: e.position)]


def _state(snap: p.QueueSnapshot, name: str) -> str:
    return next(e.state for e in snap.experiments if e.name == name)


def test_every_command_over_the_pipes(workspace: Path) -> None:
    config = copy_fixture(workspace, "micro.toml")
    extra = copy_fixture(workspace, "micro_extra.toml")
    engine = EngineProcess(config, workspace, "--workers", "1")
    try:
        hello = engine.wait_for(lambda e: True)
        assert isinstance(hello, p.Hello) and p.compatible(hello.protocol_version)
        assert hello.campaign == "micro" and not hello.resumed
        first = engine.wait_for(lambda e: isinstance(e, p.QueueSnapshot))
        assert isinstance(first, p.QueueSnapshot)
        assert _order(first) == ["1.8K_h1", "1.8K_h2"]
        # each experiment carries its split facts, read from the data and stored with it
        h1, h2 = first.experiments
        assert [s["name"] for s in h1.splits] == ["train", "val", "test"]
        assert all(s["size"] > 0 and s["start"] < s["end"] for s in h1.splits)
        assert h1.splits[0]["label_rate"] != h2.splits[0]["label_rate"]  # horizon 1 vs 2

        # pause_all before any worker can ask for a trial (a worker needs seconds to start)
        assert engine.command(p.PauseAll(id="c1")).ok
        assert engine.snapshot().paused_all

        assert engine.command(p.Move(id="c2", experiment="1.8K_h2", to=0)).ok
        assert _order(engine.snapshot()) == ["1.8K_h2", "1.8K_h1"]
        assert engine.command(p.Move(id="c3", experiment="1.8K_h2", by=1)).ok
        assert engine.command(p.Move(id="c4", experiment="1.8K_h1", by=1)).ok
        assert _order(engine.snapshot()) == ["1.8K_h2", "1.8K_h1"]

        assert engine.command(p.Pause(id="c5", experiment="1.8K_h2")).ok
        assert _state(engine.snapshot(), "1.8K_h2") == "paused"

        added = engine.command(p.AddExperiments(id="c6", config_path=str(extra)))
        assert added.ok, added.message
        assert _order(engine.snapshot()) == ["1.8K_h2", "1.8K_h1", "1.8K_h3"]
        assert engine.command(p.Skip(id="c7", experiment="1.8K_h3")).ok
        (skipped,) = engine.seen(lambda e: isinstance(e, p.ExperimentFinished))
        assert isinstance(skipped, p.ExperimentFinished)
        assert (skipped.experiment, skipped.state) == ("1.8K_h3", "skipped")

        # refused commands: one Reply each, ok=False, the engine goes on
        bad = engine.command(p.Pause(id="c8", experiment="nope"))
        assert not bad.ok and "nope" in bad.message
        assert not engine.command(p.SetWorkers(id="c9", workers=0)).ok
        engine.send_raw("this is not json")
        err = engine.wait_for(lambda e: isinstance(e, p.ErrorRaised))
        assert isinstance(err, p.ErrorRaised) and "not JSON" in err.message
        engine.send_raw('{"type": "warp", "id": "x1"}')
        err = engine.wait_for(lambda e: isinstance(e, p.ErrorRaised))
        assert isinstance(err, p.ErrorRaised) and err.command_id == "x1"

        assert engine.command(p.SetWorkers(id="c10", workers=2)).ok
        assert engine.snapshot().workers == 2

        # resume_all: h2 is paused, so the first trial is h1's although h2 is first
        assert engine.command(p.ResumeAll(id="c11")).ok
        started = engine.wait_for(lambda e: isinstance(e, p.TrialStarted), 90)
        assert isinstance(started, p.TrialStarted) and started.experiment == "1.8K_h1"
        assert started.forced_extreme  # extremes come first
        engine.wait_for(lambda e: isinstance(e, p.EpochEnded), 60)

        h1_done = engine.wait_for(
            lambda e: isinstance(e, p.ExperimentFinished) and e.experiment == "1.8K_h1", 90
        )
        assert isinstance(h1_done, p.ExperimentFinished) and h1_done.state == "done"
        assert h1_done.best_value is not None
        assert _state(engine.snapshot(), "1.8K_h2") == "paused"

        rerun = engine.command(p.Rerun(id="c12", experiment="1.8K_h1"))
        assert rerun.ok, rerun.message
        snap = engine.snapshot()
        h1 = next(e for e in snap.experiments if e.name == "1.8K_h1")
        assert h1.study_name == "micro.1.8K_h1.r2" and h1.n_complete == 0
        assert _order(snap) == ["1.8K_h2", "1.8K_h1", "1.8K_h3"]

        assert engine.command(p.Resume(id="c13", experiment="1.8K_h2")).ok
        engine.wait_for(lambda e: isinstance(e, p.TrialStarted), 60)
        assert engine.command(p.Stop(id="c14", mode="now")).ok
        bye = engine.wait_for(lambda e: isinstance(e, p.Bye), 60)
        assert isinstance(bye, p.Bye) and bye.exit_code == 130
        assert engine.drain() == 130
    finally:
        engine.kill()

    # every command got exactly one reply
    replies = [e.command_id for e in engine.events if isinstance(e, p.Reply)]
    for cid in [f"c{i}" for i in range(1, 15)]:
        assert replies.count(cid) == 1, cid

    storage = open_storage(str(workspace / "outputs" / "micro" / "optuna.journal"))
    studies = {
        s.study_name: s
        for s in storage.get_all_studies()
        if s.user_attrs.get(S_CAMPAIGN) == "micro"
    }
    old = studies["micro.1.8K_h1"]
    assert old.user_attrs[S_ARCHIVED] and old.user_attrs[S_EXPERIMENT] == "1.8K_h1"
    old_trials = storage.get_all_trials(old._study_id)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in old_trials) == 4
    # stop now: the running trial is recorded interrupted (not counted) and re-enqueued
    running = [
        t
        for s in studies.values()
        for t in storage.get_all_trials(s._study_id)
        if t.state == optuna.trial.TrialState.RUNNING
    ]
    assert running == []
    assert (workspace / "outputs" / "micro" / "1.8K_h1" / "best.json").exists()
    assert (workspace / "outputs" / "micro" / "1.8K_h1" / "trials.parquet").exists()


def test_link_attaches_to_a_running_engine_and_replays_history(workspace: Path) -> None:
    config = copy_fixture(workspace, "micro.toml")

    async def scenario() -> None:
        first = await EngineLink.open(config, workers="1")
        assert not first.attached
        hello = await first.next_event()
        assert isinstance(hello, p.Hello)
        await first.send(p.PauseAll(id=first.new_id()))
        while not isinstance(ev := await first.next_event(), p.Reply):
            pass
        await first.close()  # the front-end quits (pipes closed); the engine runs on
        os.kill(hello.pid, signal.SIGHUP)  # and so does its terminal
        assert first.returncode is None

        second = await EngineLink.open(config)
        assert second.attached
        hello2 = await second.next_event()
        assert isinstance(hello2, p.Hello) and hello2.pid == hello.pid
        stored = []  # every stored trial comes first, one event per experiment
        while isinstance(snap := await second.next_event(), p.ExperimentTrials):
            stored.append(snap.experiment)
        assert isinstance(snap, p.QueueSnapshot) and snap.paused_all
        assert stored == [e.name for e in snap.experiments]
        past = read_events(workspace / "outputs" / "micro")  # events.jsonl: replies too
        assert any(isinstance(e, p.Reply) for e in past)
        await second.send(p.Stop(id=second.new_id(), mode="now"))
        while not isinstance(ev := await second.next_event(), p.Bye):
            assert ev is not None
        await second.close()
        for _ in range(200):  # the engine that was started by `first` exits after Bye
            if first.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert first.returncode == 130

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_config_error_is_reported_and_nothing_is_started(workspace: Path) -> None:
    config = workspace / "bad.toml"
    config.write_text('[campaign]\nname = "bad"\n[defaults]\nn_trails = 3\n')
    engine = EngineProcess(config, workspace)
    assert engine.drain() == 2
    types = [type(e) for e in engine.events]
    assert types[0] is p.Hello and types[-1] is p.Bye
    errors = [e.message for e in engine.events if isinstance(e, p.ErrorRaised)]
    assert errors and any("n_trails" in m for m in errors)
    assert not (workspace / "outputs" / "bad").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="compares with this machine's sysfs")
def test_hardware_samples_carry_the_power_state_and_the_keep_awake_hold(
    workspace: Path,
) -> None:
    """Each sample says on battery or not as sysfs does, no Low Power Mode (Linux has
    none), and whether the engine's keep-awake process is alive: the engine's truth, not
    the probe's None."""
    import psutil

    from engine.monitor.power import read_linux_power

    config = copy_fixture(workspace, "micro.toml")
    engine = EngineProcess(config, workspace, monitor=True)
    try:
        event = engine.wait_for(lambda e: isinstance(e, p.HardwareSampled))
        assert isinstance(event, p.HardwareSampled)
        children = psutil.Process(engine.proc.pid).children()
        held = any(c.name() in ("systemd-inhibit", "caffeinate") for c in children)
    finally:
        engine.kill()
    power = event.sample["power"]
    assert power == {
        "on_battery": read_linux_power().on_battery,
        "low_power_mode": None,
        "keep_awake": held,
    }


def test_auto_workers_keep_the_machine_busy() -> None:
    from engine.worker.pool import auto_workers

    assert auto_workers(2, "cpu", 20_000) == (2, 1)  # small models: a process per core
    assert auto_workers(16, "cpu", 20_000) == (16, 1)
    assert auto_workers(16, "cpu", 20_000_000) == (4, 4)
    assert auto_workers(16, "cpu", 2_000_000_000) == (1, 16)
    assert auto_workers(16, "cuda:0", 2_000_000) == (4, 4)  # small trials share the GPU
    assert auto_workers(16, "cuda", 2_000_000_000) == (1, 16)
    # MPS takes the accelerator path: several small trials share the Apple GPU
    assert auto_workers(10, "mps", 2_000_000) == (4, 2)


def test_fused_groups_fill_an_accelerator_from_inside_two_workers() -> None:
    """Processes time-slice one GPU; fused groups widen each step instead."""
    from engine.worker.pool import auto_workers

    assert auto_workers(16, "cuda:0", 2_000_000, fused=True) == (2, 8)
    assert auto_workers(10, "mps", 2_000_000, fused=True) == (2, 5)
    assert auto_workers(16, "cuda", 2_000_000_000, fused=True) == (1, 16)  # big: one
    assert auto_workers(1, "cuda", 2_000_000, fused=True) == (1, 1)
    # on a CPU every core keeps its own worker; each fuses where its calibration gains
    assert auto_workers(2, "cpu", 20_000, fused=True) == (2, 1)
    assert auto_workers(16, "cpu", 20_000_000, fused=True) == (4, 4)
