"""Helpers shared by the monitor tests: recorded outputs, a fake NVML module, scripted
samples, a recorded-command runner, and replayed tool output (a unique module name, so
`pytest` and `python -m pytest` both import it)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from engine.monitor.policy import GB
from engine.monitor.sample import HardwareSample, Reading

FIXTURES = Path(__file__).parent / "fixtures"

# NVML error codes and words, as nvml.h and pynvml define them.
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
_NVML_WORDS = {3: "Not Supported", 4: "Insufficient Permissions", 9: "Driver Not Loaded"}

try:  # the real error classes when the `nvidia` extra is installed
    from pynvml import NVMLError
except ImportError:  # CI installs only the dev extra

    class NVMLError(Exception):  # type: ignore[no-redef]
        """pynvml.NVMLError's observable behaviour: a code and NVML's words for it."""

        def __init__(self, value: int) -> None:
            super().__init__(value)
            self.value = value

        def __str__(self) -> str:
            return _NVML_WORDS.get(self.value, f"NVML Error with code {self.value}")


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


class FakeNvml:
    """The slice of the `pynvml` module the NVIDIA probe uses, answering from recorded
    values and raising pynvml's error classes (or a replica when it is not installed)."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, gpus: list[dict[str, Any]], init_error: int | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.initialised = False
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> dict[str, Any]:
        return self.gpus[i]

    def _value(self, handle: dict[str, Any], key: str) -> Any:
        value = handle[key]
        if value == "NotSupported":
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        if value == "NoPermission":
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        return value

    def nvmlDeviceGetName(self, h: dict[str, Any]) -> str:
        return str(self._value(h, "name"))

    def nvmlDeviceGetUtilizationRates(self, h: dict[str, Any]) -> Any:
        return SimpleNamespace(gpu=self._value(h, "utilization_gpu"), memory=0)

    nvmlMemory_v2 = 0x02000028

    def nvmlDeviceGetMemoryInfo(self, h: dict[str, Any], version: int | None = None) -> Any:
        """v2 (`version=nvmlMemory_v2`) leaves the driver's reserved memory out of `used`;
        a handle with "memory_v2": "NotSupported" answers only v1."""
        used, total = self._value(h, "memory_used"), self._value(h, "memory_total")
        reserved = h.get("memory_reserved", 0)
        if version is None:
            return SimpleNamespace(used=used + reserved, total=total, free=total - used)
        assert version == self.nvmlMemory_v2
        if h.get("memory_v2") == "NotSupported":  # an older driver
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return SimpleNamespace(used=used, reserved=reserved, total=total, free=total - used)

    def nvmlDeviceGetTemperature(self, h: dict[str, Any], sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return int(self._value(h, "temperature_gpu"))

    def nvmlDeviceGetPowerUsage(self, h: dict[str, Any]) -> int:
        return int(self._value(h, "power_mw"))

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: dict[str, Any]) -> int:
        return int(self._value(h, "clocks_event_reasons"))


def make_sample(
    temp: float | None = 60.0,
    *,
    available_gb: float = 16.0,
    swap_bytes: int = 0,
    pressure: str | None = None,
) -> HardwareSample:
    reading = Reading.of(temp) if temp is not None else Reading.missing("no sensor exposed")
    return HardwareSample(
        ts=0.0,
        platform="test",
        cpu_percent_per_core=[50.0],
        cpu_freq_mhz=Reading.missing("n/a"),
        cpu_freq_max_mhz=Reading.missing("n/a"),
        cpu_throttled=None,
        load_avg=(1.0, 1.0, 1.0),
        memory_used_bytes=int(16 * GB),
        memory_available_bytes=int(available_gb * GB),
        memory_total_bytes=int(32 * GB),
        swap_used_bytes=swap_bytes,
        swap_growth_bytes_per_s=0.0,
        campaign_cpu_percent=100.0,
        campaign_rss_bytes=int(GB),
        temperatures_c={"cpu": reading} if temp is not None else {},
        temperature_max_c=reading,
        thermal_pressure=pressure,
        thermal_pressure_unavailable=None if pressure else "not macOS",
    )


def replay(fixture: str, *, lines: int | None = None, then: str = "sleep") -> list[str]:
    """argv of a process that prints a recorded output, then sleeps or exits."""
    end = (
        "time.sleep(30)"
        if then == "sleep"
        else "sys.stderr.write('boom: no IOReport\\n'); sys.exit(3)"
    )
    code = (
        "import sys, time\n"
        f"for line in open({str(FIXTURES / fixture)!r}).read().splitlines()[:{lines}]:\n"
        "    print(line, flush=True)\n"
        f"{end}\n"
    )
    return [sys.executable, "-c", code]


class Runner:
    """Answers commands from recorded outputs and counts the calls."""

    def __init__(self, outputs: dict[str, tuple[int, str]]) -> None:
        self.outputs = outputs
        self.calls: list[str] = []

    def __call__(self, argv: list[str]) -> tuple[int, str]:
        key = " ".join(argv)
        self.calls.append(key)
        if key not in self.outputs:
            raise FileNotFoundError(2, "No such file or directory", argv[0])
        return self.outputs[key]
