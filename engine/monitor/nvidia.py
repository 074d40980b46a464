"""NVIDIA GPUs through NVML (the `pynvml` module of nvidia-ml-py, the `nvidia` extra).

`NvmlGpus.open()` never raises: without the package, the driver or a GPU it holds the
reason, and every sample carries it in `gpu_unavailable`. Each value NVML cannot give
(a consumer card without power readings, say) becomes `Reading.missing` with NVML's own
words. Tests pass a fake module object with the same functions and constants.
"""

from __future__ import annotations

import importlib
from typing import Any

from engine.monitor.sample import GpuSample, Reading
from engine.monitor.system import celsius

INSTALL_HINT = "nvidia-ml-py not installed (pip install 'hpotui[nvidia]')"

# NVML clock event ("throttle") reason bits, as nvml.h defines them.
THROTTLE_REASONS: dict[int, str] = {
    0x001: "gpu_idle",
    0x002: "applications_clocks_setting",
    0x004: "sw_power_cap",
    0x008: "hw_slowdown",
    0x010: "sync_boost",
    0x020: "sw_thermal_slowdown",
    0x040: "hw_thermal_slowdown",
    0x080: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}


def decode_throttle_reasons(mask: int) -> list[str]:
    """NVML's bit mask as names, lowest bit first; unknown bits as hex so none is lost."""
    names = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    rest = mask & ~sum(THROTTLE_REASONS)
    if rest:
        names.append(f"unknown_0x{rest:x}")
    return names


class NvmlGpus:
    """Reads every NVIDIA GPU; holds why there are none when that is the case."""

    def __init__(self, nvml: Any | None, handles: list[Any], unavailable: str | None) -> None:
        self._nvml = nvml
        self._handles = handles
        self.unavailable = unavailable

    @classmethod
    def open(cls, nvml: Any | None = None) -> NvmlGpus:
        """Initialise NVML (the real `pynvml` unless a module object is given)."""
        if nvml is None:
            try:
                nvml = importlib.import_module("pynvml")
            except ImportError:
                return cls(None, [], INSTALL_HINT)
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError subclasses; the library may be absent
            return cls(None, [], f"NVML unavailable: {_nvml_words(exc)}")
        try:
            count = int(nvml.nvmlDeviceGetCount())
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:
            _shutdown(nvml)
            return cls(None, [], f"NVML could not list GPUs: {_nvml_words(exc)}")
        if not handles:
            _shutdown(nvml)
            return cls(None, [], "no NVIDIA GPU found by NVML")
        return cls(nvml, handles, None)

    @property
    def count(self) -> int:
        return len(self._handles)

    def read(self) -> list[GpuSample]:
        return [self._read_one(i, h) for i, h in enumerate(self._handles)]

    def close(self) -> None:
        if self._nvml is not None:
            _shutdown(self._nvml)
            self._nvml = None
            self._handles = []

    def _read_one(self, index: int, handle: Any) -> GpuSample:
        nv = self._nvml
        assert nv is not None
        name = _call(lambda: nv.nvmlDeviceGetName(handle))
        util = _call(lambda: float(nv.nvmlDeviceGetUtilizationRates(handle).gpu))
        # v2 leaves out the driver's reserved memory, as nvidia-smi does (v1 counted
        # ~0.6 GiB more on an H200); bindings or drivers without v2 give v1
        mem = _call(lambda: nv.nvmlDeviceGetMemoryInfo(handle, version=nv.nvmlMemory_v2))
        if isinstance(mem, _Failed):
            mem = _call(lambda: nv.nvmlDeviceGetMemoryInfo(handle))
        temp = _call(lambda: float(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU)))
        power_mw = _call(lambda: float(nv.nvmlDeviceGetPowerUsage(handle)))
        mask = _call(lambda: int(nv.nvmlDeviceGetCurrentClocksEventReasons(handle)))
        if isinstance(mask, _Failed):  # bindings or a driver older than the new name
            mask = _call(lambda: int(nv.nvmlDeviceGetCurrentClocksThrottleReasons(handle)))
        if isinstance(name, bytes):  # older bindings return bytes
            name = name.decode(errors="replace")
        return GpuSample(
            index=index,
            name=name if isinstance(name, str) else f"GPU {index}",
            utilization_pct=_reading(util),
            memory_used_bytes=_reading(mem, lambda m: float(m.used)),
            memory_total_bytes=_reading(mem, lambda m: float(m.total)),
            temperature_c=_temperature(temp),
            power_w=_reading(power_mw, lambda mw: mw / 1000.0),
            throttle_reasons=decode_throttle_reasons(mask) if isinstance(mask, int) else None,
        )


class _Failed:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _call(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # NVMLError_NotSupported, _NoPermission, _GpuIsLost, ...
        return _Failed(_nvml_words(exc))


def _reading(value: Any, convert: Any = float) -> Reading:
    if isinstance(value, _Failed):
        return Reading.missing(value.reason)
    return Reading.of(convert(value))


def _temperature(value: Any) -> Reading:
    if isinstance(value, _Failed):
        return Reading.missing(value.reason)
    return celsius(value, "NVML")


def _nvml_words(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Not Supported" in text:
        return "not supported by this GPU (NVML: Not Supported)"
    if "Insufficient Permissions" in text:
        return "needs more permissions (NVML: Insufficient Permissions)"
    if "Shared Library Not Found" in text:
        return "NVIDIA driver library (libnvidia-ml) not found"
    return text


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:  # shutting down a half-initialised NVML: nothing left to release
        return
