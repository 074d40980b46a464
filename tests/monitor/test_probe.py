"""One contract, run against every probe implementation (on recorded data where the
hardware is not here)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator

import pytest
from monitor_helpers import FIXTURES, FakeNvml, Runner, fixture_text, replay

from engine.monitor.factory import make_probe
from engine.monitor.linux import LinuxProbe
from engine.monitor.macos import MacProbe
from engine.monitor.nvidia import NvmlGpus
from engine.monitor.probe import Probe
from engine.monitor.sample import GpuSample, HardwareSample, Reading
from engine.protocol import HardwareSampled, decode_event, encode


def _mac() -> Probe:
    runner = Runner(
        {"sudo -n true": (1, ""), "pmset -g therm": (0, fixture_text("pmset_thermlog.txt"))}
    )
    return MacProbe(runner=runner, macmon_argv=replay("macmon_pipe.jsonl", lines=1))


PROBES: dict[str, Callable[[], Probe]] = {
    "this-machine": make_probe,
    "linux-laptop-sysfs": lambda: LinuxProbe(sysfs_root=FIXTURES / "sysfs_laptop"),
    "linux-nvidia": lambda: LinuxProbe(
        gpus=NvmlGpus.open(FakeNvml(json.loads(fixture_text("nvml_values.json"))["gpus"])),
        sysfs_root=FIXTURES / "sysfs_laptop",
    ),
    "macos-recorded": _mac,
}


@pytest.fixture(params=sorted(PROBES))
def probe(request: pytest.FixtureRequest) -> Iterator[Probe]:
    p = PROBES[request.param]()
    yield p
    p.close()
    p.close()  # idempotent


def _readings(sample: HardwareSample) -> list[tuple[str, Reading]]:
    found = [(f.name, getattr(sample, f.name)) for f in dataclasses.fields(sample)]
    found += [(f"temperatures_c[{k}]", v) for k, v in sample.temperatures_c.items()]
    for gpu in sample.gpus:
        found += [
            (f"gpu{gpu.index}.{f.name}", getattr(gpu, f.name))
            for f in dataclasses.fields(GpuSample)
        ]
    return [(name, r) for name, r in found if isinstance(r, Reading)]


def test_every_sample_keeps_the_contract(probe: Probe) -> None:
    for _ in range(2):  # the second sample measures rates since the first
        sample = probe.sample()
        assert isinstance(sample, HardwareSample)
        for name, reading in _readings(sample):
            assert (reading.value is None) != (reading.unavailable is None), name
            assert reading.unavailable is None or reading.unavailable.strip(), name
        for name, reading in sample.temperatures_c.items():
            assert reading.value is None or 0 < reading.value < 150, name
        assert (sample.thermal_pressure is None) != (sample.thermal_pressure_unavailable is None)
        assert bool(sample.gpus) != bool(sample.gpu_unavailable)
        assert sample.cpu_percent_per_core and all(
            0 <= p <= 100 for p in sample.cpu_percent_per_core
        )
        assert 0 < sample.memory_available_bytes <= sample.memory_total_bytes
        known = [r.value for r in sample.temperatures_c.values() if r.value is not None]
        assert sample.temperature_max_c.value == (max(known) if known else None)
        line = encode(HardwareSampled(sample=sample.to_dict()))
        decoded = decode_event(line)
        assert isinstance(decoded, HardwareSampled)
        assert decoded.sample == json.loads(json.dumps(sample.to_dict()))


def test_make_probe_picks_this_os() -> None:
    with make_probe() as probe:
        platform = probe.sample().platform
    assert platform == ("macos" if sys.platform == "darwin" else "linux")
