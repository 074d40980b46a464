"""The Linux probe: psutil, temperatures from psutil then sysfs, NVIDIA through NVML.

Temperatures: `psutil.sensors_temperatures()` first; when it finds nothing (or the
sysfs root is not the real one, as in tests), `/sys/class/thermal/thermal_zone*` and
`/sys/class/hwmon/hwmon*/temp*_input` are read directly, so an unreadable sensor is
reported with its error instead of silently skipped. A machine (VM, container) with
neither reports `temperature_max_c` unavailable: "no sensor exposed".

On battery: `/sys/class/power_supply` under the same root, at most every `POWER_EVERY_S`
(engine/monitor/power.py); Linux has no Low Power Mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psutil

from engine.monitor.nvidia import NvmlGpus
from engine.monitor.power import PowerReader, read_linux_power
from engine.monitor.probe import Probe
from engine.monitor.sample import HardwareSample, Reading
from engine.monitor.system import SystemReader, celsius, max_temperature

SYSFS = Path("/sys")


def read_sysfs_temperatures(root: Path = SYSFS) -> dict[str, Reading]:
    """Every thermal zone and hwmon temperature under `root` (millidegrees -> C)."""
    temps: dict[str, Reading] = {}
    for zone in sorted((root / "class" / "thermal").glob("thermal_zone*")):
        kind = _read_text(zone / "type") or "unknown"
        temps[f"{zone.name}/{kind}"] = _millidegrees(zone / "temp")
    for hwmon in sorted((root / "class" / "hwmon").glob("hwmon*")):
        chip = _read_text(hwmon / "name") or hwmon.name
        for path in sorted(hwmon.glob("temp*_input")):
            channel = path.name.removesuffix("_input")
            label = _read_text(hwmon / f"{channel}_label") or channel
            key = f"{chip}/{label}"
            if key in temps:
                key = f"{chip}/{label} ({hwmon.name})"
            temps[key] = _millidegrees(path)
    return temps


def psutil_temperatures() -> dict[str, Reading]:
    """psutil's view of the same sensors (it skips unreadable ones)."""
    try:
        found = psutil.sensors_temperatures()
    except (AttributeError, OSError):  # not built for this OS, or sysfs unreadable
        return {}
    temps: dict[str, Reading] = {}
    for chip, entries in found.items():
        for i, entry in enumerate(entries):
            key = f"{chip}/{entry.label or f'temp{i + 1}'}"
            if key in temps:
                key = f"{key} #{i + 1}"
            temps[key] = celsius(float(entry.current), "psutil")
    return temps


NO_SENSOR_RECHECK_S = 30.0


class LinuxProbe(Probe):
    """psutil + sysfs temperatures + NVML. `sysfs_root` is injectable for tests."""

    def __init__(
        self,
        campaign_pids: Callable[[], list[int]] | None = None,
        gpus: NvmlGpus | None = None,
        sysfs_root: Path = SYSFS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._system = SystemReader(campaign_pids, clock)
        self._gpus = gpus
        self._sysfs_root = sysfs_root
        self._clock = clock
        self._no_sensor_until = -1.0
        self._power = PowerReader(lambda: read_linux_power(sysfs_root), clock)

    def temperatures(self) -> dict[str, Reading]:
        # A machine that exposes no sensor is re-scanned every NO_SENSOR_RECHECK_S, not at
        # every sample: scanning sysfs is most of an idle sample's cost.
        if self._clock() < self._no_sensor_until:
            return {}
        temps = psutil_temperatures() if self._sysfs_root == SYSFS else {}
        temps = temps or read_sysfs_temperatures(self._sysfs_root)
        if not temps:
            self._no_sensor_until = self._clock() + NO_SENSOR_RECHECK_S
        return temps

    def sample(self) -> HardwareSample:
        part = self._system.read()
        temps = self.temperatures()
        gpus = self._gpus.read() if self._gpus is not None else []
        for gpu in gpus:
            temps[f"gpu{gpu.index}"] = gpu.temperature_c
        known_gpu_memory = [g.memory_used_bytes.value for g in gpus if g.memory_used_bytes.known]
        if known_gpu_memory:
            accelerator = Reading.of(sum(v for v in known_gpu_memory if v is not None))
        else:
            accelerator = Reading.missing(f"no accelerator ({self._gpu_reason()})")
        return part.sample(
            "linux",
            temperatures_c=temps,
            temperature_max_c=max_temperature(temps),
            thermal_pressure=None,
            thermal_pressure_unavailable="Linux has no OS thermal pressure level",
            gpus=gpus,
            gpu_unavailable=None if gpus else self._gpu_reason(),
            accelerator_memory_bytes=accelerator,
            power=self._power.latest(),
        )

    def _gpu_reason(self) -> str:
        return (self._gpus.unavailable if self._gpus else None) or "no NVIDIA GPU"

    def close(self) -> None:
        if self._gpus is not None:
            self._gpus.close()


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _millidegrees(path: Path) -> Reading:
    try:
        raw = path.read_text().strip()
    except OSError as exc:  # sensors that exist but fail to read (ENODATA, EIO, EAGAIN)
        return Reading.missing(f"read failed: {exc.strerror or exc}")
    try:
        value = int(raw)
    except ValueError:
        return Reading.missing(f"unparseable value {raw!r} in {path.name}")
    return celsius(value / 1000.0, str(path.name))
