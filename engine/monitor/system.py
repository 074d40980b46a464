"""What every OS reads the same way through psutil: CPU per core, frequency, load,
memory, swap and its growth rate, and the campaign's own processes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import psutil

from engine.monitor.sample import HardwareSample, Reading

# A core busier than this on average is asking for its full clock; below it, a low
# frequency is the governor saving power, not throttling.
BUSY_PERCENT = 50.0
# Running below this fraction of the maximum clock while busy counts as throttled.
THROTTLED_FRACTION = 0.85


@dataclass(frozen=True)
class SystemPart:
    """The OS-independent half of a `HardwareSample`."""

    cpu_percent_per_core: list[float]
    cpu_freq_mhz: Reading
    cpu_freq_max_mhz: Reading
    cpu_throttled: bool | None
    load_avg: tuple[float, float, float]
    memory_used_bytes: int
    memory_available_bytes: int
    memory_total_bytes: int
    swap_used_bytes: int
    swap_growth_bytes_per_s: float
    campaign_cpu_percent: float
    campaign_rss_bytes: int

    def sample(self, platform: str, **platform_fields: Any) -> HardwareSample:
        """A full sample: these fields plus the platform's own (temperatures, pressure,
        GPUs; `cpu_throttled` may be overridden by a platform that knows better)."""
        common = {f.name: getattr(self, f.name) for f in fields(self)}
        return HardwareSample(ts=time.time(), platform=platform, **{**common, **platform_fields})


def throttled(current_mhz: Reading, max_mhz: Reading, per_core: list[float]) -> bool | None:
    """Busy cores running well below their maximum clock; None when the clock is unknown."""
    if current_mhz.value is None or max_mhz.value is None:
        return None
    if not per_core or sum(per_core) / len(per_core) < BUSY_PERCENT:
        return False
    return current_mhz.value < THROTTLED_FRACTION * max_mhz.value


TREE_REFRESH_S = 5.0


class SystemReader:
    """Stateful psutil reader: CPU % and swap growth are rates between two calls."""

    def __init__(
        self,
        campaign_pids: Callable[[], list[int]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._campaign_pids = campaign_pids or (lambda: [os.getpid()])
        self._clock = clock
        self._processes: dict[int, psutil.Process] = {}
        self._tree_due = -1.0
        self._cpu_times = psutil.cpu_times(percpu=True)
        self._last_swap = (clock(), psutil.swap_memory().used)
        self._campaign_usage()  # primes the per-process CPU counters

    def read(self) -> SystemPart:
        per_core = self._per_core_percent()
        freq, freq_max = _frequency()
        memory = psutil.virtual_memory()
        swap_used = int(psutil.swap_memory().used)
        now = self._clock()
        then, before = self._last_swap
        growth = (swap_used - before) / (now - then) if now > then else 0.0
        self._last_swap = (now, swap_used)
        cpu, rss = self._campaign_usage()
        load = psutil.getloadavg()
        return SystemPart(
            cpu_percent_per_core=per_core,
            cpu_freq_mhz=freq,
            cpu_freq_max_mhz=freq_max,
            cpu_throttled=throttled(freq, freq_max, per_core),
            load_avg=(float(load[0]), float(load[1]), float(load[2])),
            memory_used_bytes=int(memory.used),
            memory_available_bytes=int(memory.available),
            memory_total_bytes=int(memory.total),
            swap_used_bytes=swap_used,
            swap_growth_bytes_per_s=float(growth),
            campaign_cpu_percent=cpu,
            campaign_rss_bytes=rss,
        )

    def _per_core_percent(self) -> list[float]:
        """Busy % per core since the previous call. Computed here from cpu_times rather
        than psutil.cpu_percent(), whose baseline is shared by every caller in the
        process (a second reader, e.g. the dashboard, would skew ours)."""
        now = psutil.cpu_times(percpu=True)
        before, self._cpu_times = self._cpu_times, now
        percents = []
        for old, new in zip(before, now, strict=False):
            # guest time is already inside user/nice on Linux (as psutil counts it)
            total = _total(new) - _total(old)
            idle = (new.idle - old.idle) + (
                getattr(new, "iowait", 0.0) - getattr(old, "iowait", 0.0)
            )
            busy = 0.0 if total <= 0 else 100.0 * (total - idle) / total
            percents.append(round(min(100.0, max(0.0, busy)), 1))
        return percents

    def _campaign_usage(self) -> tuple[float, int]:
        """CPU % (100 = one core) and RSS of the campaign's processes and their children.

        psutil.Process objects are kept between calls: cpu_percent() is a rate since
        the previous call on the same object."""
        wanted: dict[int, psutil.Process] = dict(self._processes)
        now = self._clock()
        if now >= self._tree_due:
            # Finding children scans every process of the machine: done every
            # TREE_REFRESH_S, not at every sample (dead processes drop out below).
            self._tree_due = now + TREE_REFRESH_S
            wanted = {}
            for pid in self._campaign_pids():
                try:
                    root = self._processes.get(pid) or psutil.Process(pid)
                    wanted[pid] = root
                    for child in root.children(recursive=True):
                        wanted.setdefault(child.pid, self._processes.get(child.pid) or child)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        cpu, rss = 0.0, 0
        alive: dict[int, psutil.Process] = {}
        for pid, proc in wanted.items():
            try:
                with proc.oneshot():
                    percent = proc.cpu_percent(None)
                    rss += int(proc.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            # A process seen for the first time has no previous call: its 0.0 is not a
            # measurement, so it counts from the next sample on.
            if pid in self._processes:
                cpu += percent
            alive[pid] = proc
        self._processes = alive
        return cpu, rss


def _total(times: Any) -> float:
    guest = getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    return float(sum(times)) - guest


def _frequency() -> tuple[Reading, Reading]:
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, AttributeError) as exc:
        reason = f"cpu frequency unreadable: {exc}"
        return Reading.missing(reason), Reading.missing(reason)
    if freq is None:
        reason = "cpu frequency not exposed by the OS"
        return Reading.missing(reason), Reading.missing(reason)
    current = (
        Reading.of(freq.current)
        if freq.current and freq.current > 0
        else Reading.missing("current frequency not exposed")
    )
    maximum = (
        Reading.of(freq.max)
        if freq.max and freq.max > 0
        else Reading.missing("maximum frequency not exposed (no cpufreq driver)")
    )
    return current, maximum


# Below 0 C or above 150 C no CPU, GPU or board sensor reports a real temperature while
# the machine runs: such values are read errors (the reference pipeline's -1).
PLAUSIBLE_C = (0.0, 150.0)
NO_SENSOR = "no sensor exposed"


def celsius(value: float, source: str = "") -> Reading:
    """A temperature reading, or unavailable when the value is not a real temperature."""
    low, high = PLAUSIBLE_C
    if value != value or not low < value < high:  # NaN included
        where = f" from {source}" if source else ""
        return Reading.missing(f"implausible value {value:g} C{where}")
    return Reading.of(value)


def max_temperature(temps: dict[str, Reading], none_reason: str = NO_SENSOR) -> Reading:
    """The hottest known sensor; unavailable (with why) when no sensor has a value."""
    known = [r.value for r in temps.values() if r.value is not None]
    if known:
        return Reading.of(max(known))
    if not temps:
        return Reading.missing(none_reason)
    name, first = next(iter(temps.items()))
    return Reading.missing(
        f"no readable sensor ({len(temps)} exposed; {name}: {first.unavailable})"
    )
