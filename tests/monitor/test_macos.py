"""MacProbe with recorded pmset output and real subprocesses replaying macmon and
powermetrics (runs on any OS: psutil does the rest)."""

from __future__ import annotations

import time

from monitor_helpers import Runner, fixture_text, replay

from engine.monitor.macos import NO_MACMON, MacProbe

NO_SUDO = {"sudo -n true": (1, "")}


def test_without_macmon_or_sudo_temperature_is_unknown_with_the_fix() -> None:
    runner = Runner({**NO_SUDO, "pmset -g therm": (0, fixture_text("pmset_therm_nominal.txt"))})
    probe = MacProbe(runner=runner, macmon_argv=[])  # [] = as if macmon were not installed
    sample = probe.sample()
    probe.close()
    assert sample.platform == "macos"
    assert sample.temperature_max_c.value is None
    assert sample.temperature_max_c.unavailable == NO_MACMON
    assert sample.thermal_pressure == "nominal"
    assert sample.gpus == [] and "macmon" in str(sample.gpu_unavailable)
    # No MPS on this (Linux) machine: the reading says why (torch not loaded, or MPS not
    # available), never a number.
    mps = sample.accelerator_memory_bytes
    assert not mps.known
    assert "torch" in str(mps.unavailable) or "MPS" in str(mps.unavailable)


def test_pmset_is_polled_at_most_every_five_seconds() -> None:
    now = [0.0]
    runner = Runner(
        {**NO_SUDO, "pmset -g therm": (0, fixture_text("pmset_therm_intel_throttled.txt"))}
    )
    probe = MacProbe(runner=runner, clock=lambda: now[0])
    for t in (0.0, 1.0, 2.0, 4.9, 5.0, 6.0):
        now[0] = t
        sample = probe.sample()
    probe.close()
    assert runner.calls.count("pmset -g therm") == 2
    assert sample.thermal_pressure == "fair"
    assert sample.cpu_throttled is True  # CPU_Speed_Limit = 70


def test_pmset_missing_or_failing_gives_reasons() -> None:
    probe = MacProbe(runner=Runner(NO_SUDO))
    sample = probe.sample()
    probe.close()
    assert sample.thermal_pressure is None
    assert "pmset not runnable" in str(sample.thermal_pressure_unavailable)
    assert "powermetrics needs sudo" in str(sample.thermal_pressure_unavailable)
    failing = MacProbe(runner=Runner({**NO_SUDO, "pmset -g therm": (1, "")}))
    assert "exited with code 1" in str(failing.sample().thermal_pressure_unavailable)
    failing.close()


def _wait_for(probe: MacProbe, predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sample = probe.sample()
        if predicate(sample):
            return sample
        time.sleep(0.05)
    raise AssertionError(f"condition not met; last sample: {sample}")


def test_macmon_temperatures_and_apple_gpu() -> None:
    runner = Runner({**NO_SUDO, "pmset -g therm": (0, fixture_text("pmset_therm_nominal.txt"))})
    probe = MacProbe(runner=runner, macmon_argv=replay("macmon_pipe.jsonl", lines=2))
    try:
        sample = _wait_for(probe, lambda s: s.temperature_max_c.value == 88.41027)
    finally:
        probe.close()
    assert sample.temperatures_c["gpu (macmon avg)"].value == 79.5043
    (gpu,) = sample.gpus
    assert gpu.name == "Apple GPU" and gpu.utilization_pct.value is not None
    assert round(gpu.utilization_pct.value, 3) == 94.122
    assert gpu.power_w.value == 14.210519
    assert gpu.memory_total_bytes.value == 25769803776
    assert gpu.throttle_reasons is None
    assert sample.gpu_unavailable is None


def test_macmon_without_sensors_is_not_zero_degrees() -> None:
    runner = Runner({**NO_SUDO, "pmset -g therm": (0, fixture_text("pmset_therm_nominal.txt"))})
    # replay only the third line (macmon found no sensor and wrote 0.0)
    argv = replay("macmon_pipe.jsonl")
    argv[-1] = argv[-1].replace("[:None]", "[2:3]")
    probe = MacProbe(runner=runner, macmon_argv=argv)
    try:
        sample = _wait_for(probe, lambda s: bool(s.temperatures_c))
    finally:
        probe.close()
    assert sample.temperature_max_c.value is None
    assert "no readable sensor" in str(sample.temperature_max_c.unavailable)


def test_powermetrics_with_passwordless_sudo_wins_over_pmset() -> None:
    runner = Runner(
        {"sudo -n true": (0, ""), "pmset -g therm": (0, fixture_text("pmset_therm_nominal.txt"))}
    )
    probe = MacProbe(runner=runner, powermetrics_argv=replay("powermetrics_thermal.txt"))
    try:
        sample = _wait_for(probe, lambda s: s.thermal_pressure == "heavy")
    finally:
        probe.close()
    assert sample.thermal_pressure_unavailable is None
