"""A typed hardware sample. Every sensor value is a `Reading`: a number, or unavailable
with the reason. Nothing unreadable is ever reported as a number (the reference
pipeline's -1 temperature counted as "normal" and disabled thermal protection)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reading:
    value: float | None = None
    unavailable: str | None = None  # reason, when value is None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.unavailable is None):
            raise ValueError("a Reading has either a value or an unavailable reason")

    @classmethod
    def of(cls, value: float) -> Reading:
        return cls(value=float(value))

    @classmethod
    def missing(cls, reason: str) -> Reading:
        return cls(unavailable=reason)

    @property
    def known(self) -> bool:
        return self.value is not None

    def __str__(self) -> str:
        return "unknown" if self.value is None else f"{self.value:g}"


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    utilization_pct: Reading
    memory_used_bytes: Reading
    memory_total_bytes: Reading
    temperature_c: Reading
    power_w: Reading
    throttle_reasons: list[str] | None  # None when unreadable


@dataclass(frozen=True)
class PowerState:
    """What slows a machine down beyond heat, and whether it is kept awake. None is
    unknown: unreadable, or not this OS's notion (Low Power Mode is macOS only), never a
    guess."""

    on_battery: bool | None = None
    low_power_mode: bool | None = None
    keep_awake: bool | None = None  # the engine's hold (engine/monitor/keep_awake.py)

    @property
    def slows(self) -> bool:
        """On battery or in Low Power Mode: trials run slower than the machine can."""
        return bool(self.on_battery or self.low_power_mode)

    def words(self) -> str:
        parts = []
        if self.on_battery is not None:
            parts.append("on battery" if self.on_battery else "on AC power")
        if self.low_power_mode is not None:
            parts.append(f"Low Power Mode {'on' if self.low_power_mode else 'off'}")
        if self.keep_awake is not None:
            parts.append("kept awake" if self.keep_awake else "not kept awake")
        return ", ".join(parts) or "unknown"


@dataclass(frozen=True)
class HardwareSample:
    ts: float
    platform: str  # "linux", "macos", ...
    cpu_percent_per_core: list[float]
    cpu_freq_mhz: Reading
    cpu_freq_max_mhz: Reading
    cpu_throttled: bool | None  # None = unknown
    load_avg: tuple[float, float, float]
    memory_used_bytes: int
    memory_available_bytes: int
    memory_total_bytes: int
    swap_used_bytes: int
    swap_growth_bytes_per_s: float
    campaign_cpu_percent: float
    campaign_rss_bytes: int
    temperatures_c: dict[str, Reading]  # named sensors; empty when none is exposed
    temperature_max_c: Reading
    thermal_pressure: str | None  # OS thermal pressure ("nominal", "serious", ...)
    thermal_pressure_unavailable: str | None  # reason when thermal_pressure is None
    gpus: list[GpuSample] = field(default_factory=list)
    gpu_unavailable: str | None = None
    accelerator_memory_bytes: Reading = field(
        default_factory=lambda: Reading.missing("no accelerator")
    )
    power: PowerState = field(default_factory=PowerState)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
