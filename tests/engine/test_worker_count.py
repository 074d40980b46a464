"""The worker count set with `set_workers` (the dashboard's +/-) is stored with the
campaign and survives engine restarts; an explicit --workers wins for its session. Each
start also sends every experiment's stored trials (`experiment_trials`) right after
`hello`, before the first queue snapshot (a real engine over its pipes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from enginehelp import EngineProcess, copy_fixture

from engine import protocol as p

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
WAIT_S = 300.0  # three engine starts, on a shared and loaded machine


def _start(config: Path, workspace: Path, *extra: str) -> tuple[EngineProcess, p.Hello]:
    engine = EngineProcess(config, workspace, *extra)
    hello = engine.wait_for(lambda e: True, WAIT_S)
    assert isinstance(hello, p.Hello)
    return engine, hello


def _stop(engine: EngineProcess) -> None:
    try:
        engine.command(p.Stop(id="stop", mode="now"), WAIT_S)
        engine.drain(WAIT_S)
    finally:
        engine.kill()


def test_worker_count_survives_a_restart_and_trials_come_after_hello(workspace: Path) -> None:
    config = copy_fixture(workspace, "micro.toml")  # workers = 1
    engine, hello = _start(config, workspace)
    try:
        assert hello.workers == 1
        snap = engine.wait_for(lambda e: isinstance(e, p.QueueSnapshot), WAIT_S)
        assert isinstance(snap, p.QueueSnapshot)
        stored = engine.seen(lambda e: isinstance(e, p.ExperimentTrials))
        assert [e.experiment for e in stored] == [x.name for x in snap.experiments]  # type: ignore[attr-defined]
        assert engine.command(p.SetWorkers(id="w", workers=2), WAIT_S).ok
    finally:
        _stop(engine)

    engine, hello = _start(config, workspace)
    try:
        assert hello.workers == 2  # the count set before the restart
        engine.wait_for(lambda e: isinstance(e, p.QueueSnapshot), WAIT_S)
        assert len(engine.seen(lambda e: isinstance(e, p.ExperimentTrials))) == len(
            engine.snapshot().experiments
        )
    finally:
        _stop(engine)

    engine, hello = _start(config, workspace, "--workers", "1")
    try:
        assert hello.workers == 1  # an explicit --workers wins
    finally:
        _stop(engine)
