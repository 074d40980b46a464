from __future__ import annotations

import threading
import time

import pytest
from monitor_helpers import make_sample

from engine.campaign.model import MonitorSpec
from engine.monitor.policy import PolicyDecision, ThermalPolicy
from engine.monitor.probe import Probe
from engine.monitor.sample import HardwareSample
from engine.monitor.sampler import MonitorThread


class ScriptedProbe(Probe):
    """Plays back temperatures; raises once where the script says "boom"."""

    def __init__(self, script: list[float | str]) -> None:
        self.script = list(script)

    def sample(self) -> HardwareSample:
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if item == "boom":
            raise RuntimeError("sensor exploded")
        return make_sample(float(item))


def collect(
    thread_probe: Probe, n: int, **kwargs
) -> tuple[list[tuple[HardwareSample, PolicyDecision]], list[BaseException]]:  # type: ignore[no-untyped-def]
    got: list[tuple[HardwareSample, PolicyDecision]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def on_sample(sample: HardwareSample, decision: PolicyDecision) -> None:
        got.append((sample, decision))
        if len(got) >= n:
            done.set()

    monitor = MonitorThread(
        thread_probe,
        ThermalPolicy(MonitorSpec()),
        on_sample,
        interval_s=0.01,
        on_error=errors.append,
        **kwargs,
    )
    with monitor:
        assert done.wait(10), "the monitor thread did not deliver samples"
    assert not monitor.running  # stop() joined
    return got, errors


def test_samples_and_decisions_reach_the_callback_in_order() -> None:
    got, errors = collect(ScriptedProbe([50, 86, 96, 90]), 4)
    assert errors == []
    assert [d.state for _, d in got[:4]] == ["ok", "warning", "critical", "paused"]
    assert [s.temperature_max_c.value for s, _ in got[:4]] == [50, 86, 96, 90]


def test_a_failing_sample_is_reported_and_sampling_goes_on() -> None:
    got, errors = collect(ScriptedProbe([50, "boom", 60]), 2)
    assert len(errors) == 1 and "sensor exploded" in str(errors[0])
    assert [s.temperature_max_c.value for s, _ in got[:2]] == [50, 60]


def test_trial_running_reaches_the_policy() -> None:
    calls: list[bool] = []

    def running() -> bool:
        calls.append(True)
        return True

    collect(ScriptedProbe([50]), 3, trial_running=running)
    assert len(calls) >= 3


def test_interval_defaults_to_the_spec_and_must_be_positive() -> None:
    policy = ThermalPolicy(MonitorSpec(interval_s=2.5))
    assert MonitorThread(ScriptedProbe([50]), policy, lambda s, d: None).interval_s == 2.5
    with pytest.raises(ValueError, match="> 0"):
        MonitorThread(ScriptedProbe([50]), policy, lambda s, d: None, interval_s=0)


def test_stop_returns_promptly_with_a_long_interval() -> None:
    monitor = MonitorThread(
        ScriptedProbe([50]), ThermalPolicy(MonitorSpec()), lambda s, d: None, interval_s=60
    )
    monitor.start()
    time.sleep(0.05)
    started = time.monotonic()
    monitor.stop()
    # far under the 60 s interval it would otherwise sleep out (slack for a loaded machine)
    assert time.monotonic() - started < 20 and not monitor.running
    assert monitor.samples_taken == 1
