"""Pure parsers for what macOS tools print (tested on recorded outputs in
tests/monitor/fixtures/): `pmset -g therm` / `pmset -g thermlog`, `macmon pipe` JSON
lines, `powermetrics --samplers thermal` text.

Pressure levels are reported with Apple's `ProcessInfo.thermalState` names:
"nominal" < "fair" < "serious" < "critical" (powermetrics' own words, "moderate",
"heavy", "trapping", "sleeping", are passed through lower-cased; the policy knows both).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from engine.monitor.sample import Reading
from engine.monitor.system import celsius

PRESSURE_ORDER = ("nominal", "fair", "serious", "critical")

# IOPMGetThermalWarningLevel: kIOPMThermalWarningLevelNormal = 0, Danger = 5, Crisis = 10.
DANGER_LEVEL = 5
CRISIS_LEVEL = 10

_NUMBER_KEY = re.compile(
    r"(?P<key>thermal[ _]?(?:warning[ _]?)?level|performance[ _]?(?:warning[ _]?)?level"
    r"|cpu_speed_limit|cpu_scheduler_limit|cpu_available_cpus)\s*[=:]\s*(?P<value>-?\d+)",
    re.IGNORECASE,
)
_NOTES = (
    "no thermal warning level has been recorded",
    "no performance warning level has been recorded",
    "no cpu power status has been recorded",
)


@dataclass(frozen=True)
class PmsetTherm:
    """What `pmset -g therm` (or its log) says; None fields were not printed."""

    pressure: str | None
    unavailable: str | None = None  # why pressure is None
    thermal_warning_level: int | None = None
    performance_warning_level: int | None = None
    cpu_speed_limit: int | None = None  # percent of full speed; < 100 = throttled
    cpu_scheduler_limit: int | None = None
    cpu_available_cpus: int | None = None


def parse_pmset_therm(text: str) -> PmsetTherm:
    """Parse `pmset -g therm` or `pmset -g thermlog`: for each value the last one printed
    wins (the log is in time order). "No ... has been recorded" notes mean nothing has
    happened since boot: nominal."""
    values: dict[str, int] = {}
    for match in _NUMBER_KEY.finditer(text):
        key = match.group("key").lower().replace(" ", "_")
        if key.startswith("thermal"):
            key = "thermal"
        elif key.startswith("performance"):
            key = "performance"
        values[key] = int(match.group("value"))
    lowered = text.lower()
    notes = [n for n in _NOTES if n in lowered]
    if not values and not notes:
        first = text.strip().splitlines()[0] if text.strip() else "(empty)"
        return PmsetTherm(pressure=None, unavailable=f"unrecognised pmset output: {first[:80]}")
    level = 0
    thermal = values.get("thermal")
    if thermal is not None and thermal >= CRISIS_LEVEL:
        level = 3
    elif thermal is not None and thermal > 0:
        level = 2 if thermal >= DANGER_LEVEL else 1
    if values.get("performance", 0) > 0:
        level = max(level, 1)
    speed = values.get("cpu_speed_limit")
    if speed is not None and speed < 100:
        level = max(level, 1)
    return PmsetTherm(
        pressure=PRESSURE_ORDER[level],
        thermal_warning_level=thermal,
        performance_warning_level=values.get("performance"),
        cpu_speed_limit=speed,
        cpu_scheduler_limit=values.get("cpu_scheduler_limit"),
        cpu_available_cpus=values.get("cpu_available_cpus"),
    )


@dataclass(frozen=True)
class MacmonSample:
    """One `macmon pipe` line."""

    temperatures_c: dict[str, Reading] = field(default_factory=dict)
    gpu_utilization_pct: Reading = field(default_factory=lambda: Reading.missing("not in line"))
    gpu_freq_mhz: Reading = field(default_factory=lambda: Reading.missing("not in line"))
    gpu_power_w: Reading = field(default_factory=lambda: Reading.missing("not in line"))
    ram_used_bytes: Reading = field(default_factory=lambda: Reading.missing("not in line"))
    ram_total_bytes: Reading = field(default_factory=lambda: Reading.missing("not in line"))


def parse_macmon_line(line: str) -> MacmonSample:
    """One JSON line of `macmon pipe`. macmon writes 0.0 for a temperature it found no
    sensor for; that is unavailable, not 0 C. Raises ValueError on a line that is not a
    macmon JSON object."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"macmon line is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("macmon line is not a JSON object")
    temps: dict[str, Reading] = {}
    temp = data.get("temp")
    if isinstance(temp, dict):
        for key, name in (
            ("cpu_temp_avg", "cpu (macmon avg)"),
            ("gpu_temp_avg", "gpu (macmon avg)"),
        ):
            value = temp.get(key)
            if isinstance(value, int | float):
                temps[name] = (
                    Reading.missing("macmon found no sensor (reported 0)")
                    if value == 0
                    else celsius(float(value), "macmon")
                )
    usage = data.get("gpu_usage")
    util = freq = Reading.missing("macmon line has no gpu_usage")
    if (
        isinstance(usage, list)
        and len(usage) == 2
        and all(isinstance(v, int | float) for v in usage)
    ):
        freq = Reading.of(usage[0])
        util = Reading.of(100.0 * float(usage[1]))
    memory = data.get("memory")
    if not isinstance(memory, dict):
        memory = {}
    return MacmonSample(
        temperatures_c=temps,
        gpu_utilization_pct=util,
        gpu_freq_mhz=freq,
        gpu_power_w=_number(data.get("gpu_power"), "macmon line has no gpu_power"),
        ram_used_bytes=_number(memory.get("ram_usage"), "macmon line has no ram_usage"),
        ram_total_bytes=_number(memory.get("ram_total"), "macmon line has no ram_total"),
    )


@dataclass(frozen=True)
class PowermetricsSample:
    pressure: str | None
    temperatures_c: dict[str, Reading]


_PRESSURE = re.compile(r"current pressure level:\s*(\w+)", re.IGNORECASE)
_DIE_TEMP = re.compile(r"^\s*(CPU|GPU) die temperature:\s*(-?[\d.]+)\s*C", re.IGNORECASE | re.M)


def parse_powermetrics(text: str) -> PowermetricsSample:
    """One sample of `powermetrics --samplers thermal[,smc]`: pressure level, and die
    temperatures where the smc sampler exists (Intel Macs)."""
    pressure = _PRESSURE.search(text)
    temps = {
        f"{m.group(1).lower()} die (powermetrics)": celsius(float(m.group(2)), "powermetrics")
        for m in _DIE_TEMP.finditer(text)
    }
    return PowermetricsSample(pressure.group(1).lower() if pressure else None, temps)


def split_powermetrics(lines: list[str]) -> tuple[list[str], list[str]]:
    """Split buffered powermetrics lines into (complete sample, rest): a sample ends
    where the next "*** Sampled system activity" header begins."""
    headers = [i for i, line in enumerate(lines) if line.startswith("*** Sampled system activity")]
    if len(headers) < 2:
        return [], lines
    return lines[headers[-2] : headers[-1]], lines[headers[-1] :]


def _number(value: object, reason: str) -> Reading:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Reading.of(float(value))
    return Reading.missing(reason)
