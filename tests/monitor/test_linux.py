from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import psutil
import pytest
from monitor_helpers import FIXTURES, FakeNvml

from engine.monitor.linux import LinuxProbe, read_sysfs_temperatures
from engine.monitor.nvidia import NvmlGpus
from engine.monitor.system import NO_SENSOR
from engine.protocol import HardwareSampled, decode_event, encode

LAPTOP = FIXTURES / "sysfs_laptop"


def test_sysfs_laptop_tree() -> None:
    temps = read_sysfs_temperatures(LAPTOP)
    assert temps["thermal_zone1/x86_pkg_temp"].value == 61.0
    assert temps["thermal_zone0/acpitz"].value == 27.8
    assert temps["coretemp/Package id 0"].value == 61.0
    assert temps["coretemp/Core 1"].value == 61.0
    assert temps["nvme/Composite"].value == 38.85
    assert temps["nvme/Composite (hwmon3)"].value == 41.85  # two chips of one name both kept
    assert temps["acpitz/temp1"].value == 27.8  # unlabelled channel
    broken = temps["thermal_zone3/iwlwifi_1"]  # the wifi zone reads -274 C when the card is off
    assert broken.value is None and "implausible value -274" in str(broken.unavailable)


def test_sysfs_sensor_that_fails_to_read(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    shutil.copytree(LAPTOP, root)
    bad = root / "class" / "thermal" / "thermal_zone1" / "temp"
    bad.unlink()
    bad.mkdir()  # reading it raises OSError, as ENODATA does on real hardware
    (root / "class" / "hwmon" / "hwmon1" / "temp2_input").write_text("n/a\n")
    temps = read_sysfs_temperatures(root)
    assert "read failed" in str(temps["thermal_zone1/x86_pkg_temp"].unavailable)
    assert "unparseable" in str(temps["nvme/Sensor 1"].unavailable)


def test_probe_on_the_laptop_tree_takes_the_hottest_known_sensor() -> None:
    with LinuxProbe(sysfs_root=LAPTOP) as probe:
        sample = probe.sample()
    assert sample.temperature_max_c.value == 61.0
    assert sample.thermal_pressure is None and sample.thermal_pressure_unavailable


def test_empty_sysfs_says_no_sensor_exposed(tmp_path: Path) -> None:
    sample = LinuxProbe(sysfs_root=tmp_path).sample()
    assert sample.temperatures_c == {}
    assert sample.temperature_max_c.value is None
    assert sample.temperature_max_c.unavailable == NO_SENSOR


def test_all_sensors_unreadable_is_unknown_with_the_reason(tmp_path: Path) -> None:
    zone = tmp_path / "class" / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("acpitz\n")
    (zone / "temp").write_text("-1000\n")  # -1 C: the reference pipeline's "normal"
    sample = LinuxProbe(sysfs_root=tmp_path).sample()
    assert sample.temperature_max_c.value is None
    assert "no readable sensor" in str(sample.temperature_max_c.unavailable)
    assert "implausible value -1" in str(sample.temperature_max_c.unavailable)


@pytest.mark.skipif(not Path("/proc").exists(), reason="Linux only")
def test_real_probe_on_this_machine() -> None:
    """This machine (a VM) exposes no temperature sensor: the sample must say so."""
    if psutil.sensors_temperatures() or list(Path("/sys/class/hwmon").glob("hwmon*/temp*_input")):
        pytest.skip("this machine exposes temperature sensors")
    probe = LinuxProbe()
    time.sleep(0.2)
    sample = probe.sample()
    probe.close()
    assert sample.platform == "linux"
    assert sample.temperature_max_c.value is None
    assert sample.temperature_max_c.unavailable == "no sensor exposed"
    assert len(sample.cpu_percent_per_core) == psutil.cpu_count()
    assert all(0.0 <= p <= 100.0 for p in sample.cpu_percent_per_core)
    assert sample.memory_total_bytes == psutil.virtual_memory().total
    assert 0 < sample.memory_available_bytes <= sample.memory_total_bytes
    assert sample.campaign_rss_bytes >= psutil.Process(os.getpid()).memory_info().rss // 2
    # the sample crosses the pipe as a HardwareSampled event and comes back intact
    event = decode_event(encode(HardwareSampled(sample=sample.to_dict())))
    assert isinstance(event, HardwareSampled)
    assert event.sample["temperature_max_c"] == {"value": None, "unavailable": "no sensor exposed"}
    json.dumps(sample.to_dict(), allow_nan=False)


def test_campaign_processes_count_children_cpu() -> None:
    """A busy child process of the campaign shows up in campaign CPU %."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        probe = LinuxProbe(campaign_pids=lambda: [os.getpid()], sysfs_root=FIXTURES / "none")
        time.sleep(0.2)
        probe.sample()  # the child is seen for the first time here
        # How much CPU the child gets depends on the machine's load (under load: a few %
        # of a core), so the probe's figure is compared with the child's own CPU time over
        # the same interval, not with a fixed share. This process only sleeps: without
        # its child the campaign would show ~0 %.
        own = psutil.Process(child.pid)
        before, started = sum(own.cpu_times()[:2]), time.monotonic()
        time.sleep(2.0)
        sample = probe.sample()
        child_percent = 100 * (sum(own.cpu_times()[:2]) - before) / (time.monotonic() - started)
    finally:
        child.kill()
        child.wait()
    assert child_percent > 1.0  # the child did run
    assert sample.campaign_cpu_percent > 0.5 * child_percent
    assert max(sample.cpu_percent_per_core) > 20.0
    assert sample.campaign_rss_bytes > psutil.Process().memory_info().rss


def test_nvidia_gpus_join_the_sample(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    probe = LinuxProbe(gpus=NvmlGpus.open(fake_nvml), sysfs_root=tmp_path)
    sample = probe.sample()
    probe.close()
    assert [g.name for g in sample.gpus] == ["NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 3060"]
    assert sample.gpu_unavailable is None
    assert sample.temperatures_c["gpu0"].value == 71.0
    assert sample.temperature_max_c.value == 71.0
    assert sample.accelerator_memory_bytes.value == 64208355328 + 276037632
    assert fake_nvml.shutdowns == 1
