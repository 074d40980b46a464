"""The thermal and memory policy: a state machine fed one `HardwareSample` at a time.

States (`engine.protocol.ThermalLevel`):
- ok: new trials may start.
- warning: temperature >= `warning_c`, macOS pressure "serious"/"heavy", or available
  memory below the floor. No new trial starts; running trials go on. Back to ok only
  after every signal has been cool (temperature < warning_c - hysteresis_c, pressure
  nominal/fair/moderate, memory above the floor) continuously for `cool_down_s`.
- critical: temperature >= `critical_c`, macOS pressure "critical"/"trapping"/
  "sleeping", or swap growing faster than `max_swap_growth_mb_per_s` while a trial runs
  (a thrashing trial). Running trials stop at their next epoch boundary.
- paused: after critical, once the critical signal is gone: still no new trials, still
  stopping whatever runs, until cool for `cool_down_s` (as warning).
- unknown: no temperature and no OS pressure can be read. `on_unknown_temperature`
  "run" keeps starting trials (the transition into unknown is the one warning);
  "pause" starts none.

Only state changes produce a `transition` (-> one `ThermalChanged` event with its
reason); the same state again produces none, so the engine can forward decisions as
they come. The clock is injectable: tests drive the machine with scripted samples.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from engine.monitor.sample import HardwareSample
from engine.protocol import ThermalChanged, ThermalLevel

if TYPE_CHECKING:
    from engine.campaign.model import MonitorSpec

MB = 1024 * 1024
GB = 1024 * MB
# Swap growth is judged over this window, so one burst of paging (a model being loaded)
# does not stop a trial, while steady thrashing does within seconds.
SWAP_WINDOW_S = 10.0

WARNING_PRESSURES = frozenset({"serious", "heavy"})
CRITICAL_PRESSURES = frozenset({"critical", "trapping", "sleeping"})
COOL_PRESSURES = frozenset({"nominal", "fair", "moderate"})


class Level(IntEnum):
    """How hot one signal is; the worst signal wins."""

    COOL = 0
    BAND = 1  # between warning - hysteresis and warning: neither trips nor cools
    WARN = 2
    CRIT = 3


@dataclass(frozen=True)
class PolicyDecision:
    """What the engine must do after one sample."""

    state: ThermalLevel
    allow_new_trials: bool
    stop_running_trials: bool
    transition: tuple[ThermalLevel, ThermalLevel, str] | None = None  # previous, new, why

    def event(self) -> ThermalChanged | None:
        """The `ThermalChanged` event for this decision's transition, if any."""
        if self.transition is None:
            return None
        previous, new, reason = self.transition
        return ThermalChanged(state=new, previous=previous, reason=reason)


class ThermalPolicy:
    """Turns samples into decisions; see the module docstring for the states."""

    def __init__(self, spec: MonitorSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._clock = clock
        self.state: ThermalLevel = "ok"
        self._cool_since: float | None = None
        self._swap: deque[tuple[float, int]] = deque()

    def update(self, sample: HardwareSample, trial_running: bool) -> PolicyDecision:
        now = self._clock()
        signals = self._signals(sample, trial_running, now)
        level, reason = max(signals, key=lambda s: s[0]) if signals else (Level.COOL, "")
        thermal_known = sample.temperature_max_c.known or _pressure(sample) is not None
        new = self._next_state(level, thermal_known, now)
        if new in ("ok", "unknown") and self.state in ("warning", "paused"):
            reason = f"cool for {self.spec.cool_down_s:g} s" + (
                "" if thermal_known else " (temperature unknown)"
            )
        elif new == "unknown":
            reason = _unknown_reason(sample, self.spec)
        elif new == "paused" and self.state == "critical":
            reason = f"critical condition over ({reason or 'cool'}); paused until cool for {self.spec.cool_down_s:g} s"
        elif new == "ok" and self.state == "unknown":
            reason = "temperature readable again" + (f": {reason}" if reason else "")
        transition = (self.state, new, reason) if new != self.state else None
        self.state = new
        return PolicyDecision(
            state=new,
            allow_new_trials=new == "ok"
            or (new == "unknown" and self.spec.on_unknown_temperature == "run"),
            stop_running_trials=new in ("critical", "paused"),
            transition=transition,
        )

    def _next_state(self, level: Level, thermal_known: bool, now: float) -> ThermalLevel:
        cool_enough = level == Level.COOL and (
            thermal_known or self.spec.on_unknown_temperature == "run"
        )
        if cool_enough:
            if self._cool_since is None:
                self._cool_since = now
        else:
            self._cool_since = None
        if level == Level.CRIT:
            return "critical"
        if self.state in ("critical", "paused"):
            return "paused" if not self._cooled(now) else self._calm(thermal_known)
        if level == Level.WARN or (self.state == "warning" and not self._cooled(now)):
            return "warning"
        return self._calm(thermal_known)

    def _cooled(self, now: float) -> bool:
        return self._cool_since is not None and now - self._cool_since >= self.spec.cool_down_s

    def _calm(self, thermal_known: bool) -> ThermalLevel:
        return "ok" if thermal_known else "unknown"

    def _signals(
        self, sample: HardwareSample, trial_running: bool, now: float
    ) -> list[tuple[Level, str]]:
        spec = self.spec
        signals: list[tuple[Level, str]] = []
        temp = sample.temperature_max_c.value
        if temp is not None:
            if temp >= spec.critical_c:
                signals.append(
                    (Level.CRIT, f"temperature {temp:g} C >= critical {spec.critical_c:g} C")
                )
            elif temp >= spec.warning_c:
                signals.append(
                    (Level.WARN, f"temperature {temp:g} C >= warning {spec.warning_c:g} C")
                )
            elif temp >= spec.warning_c - spec.hysteresis_c:
                signals.append(
                    (
                        Level.BAND,
                        f"temperature {temp:g} C, not yet below {spec.warning_c - spec.hysteresis_c:g} C",
                    )
                )
            else:
                signals.append((Level.COOL, f"temperature {temp:g} C"))
        pressure = _pressure(sample)
        if pressure in CRITICAL_PRESSURES:
            signals.append((Level.CRIT, f"OS thermal pressure {pressure}"))
        elif pressure in WARNING_PRESSURES:
            signals.append((Level.WARN, f"OS thermal pressure {pressure}"))
        available_gb = sample.memory_available_bytes / GB
        if available_gb < spec.min_available_memory_gb:
            signals.append(
                (
                    Level.WARN,
                    f"memory: {available_gb:.2f} GB available < floor {spec.min_available_memory_gb:g} GB",
                )
            )
        growth = self._swap_growth(sample, trial_running, now)
        if growth is not None and growth > spec.max_swap_growth_mb_per_s:
            signals.append(
                (
                    Level.CRIT,
                    f"swap growing {growth:.0f} MB/s > {spec.max_swap_growth_mb_per_s:g} MB/s while a trial runs",
                )
            )
        return signals

    def _swap_growth(self, sample: HardwareSample, trial_running: bool, now: float) -> float | None:
        """MB/s over the last SWAP_WINDOW_S of trial time; None until a window is full."""
        if not trial_running:
            self._swap.clear()
            return None
        self._swap.append((now, sample.swap_used_bytes))
        while len(self._swap) > 2 and now - self._swap[1][0] >= SWAP_WINDOW_S:
            self._swap.popleft()
        then, before = self._swap[0]
        if now - then < SWAP_WINDOW_S:
            return None
        return (sample.swap_used_bytes - before) / MB / (now - then)


def _pressure(sample: HardwareSample) -> str | None:
    """The OS pressure level when it is one the policy knows; None otherwise."""
    if sample.thermal_pressure is None:
        return None
    level = sample.thermal_pressure.strip().lower()
    known = WARNING_PRESSURES | CRITICAL_PRESSURES | COOL_PRESSURES
    return level if level in known else None


def _unknown_reason(sample: HardwareSample, spec: MonitorSpec) -> str:
    why = sample.temperature_max_c.unavailable or "unreadable"
    action = (
        "trials keep running without thermal protection (on_unknown_temperature = run)"
        if spec.on_unknown_temperature == "run"
        else "no new trials (on_unknown_temperature = pause)"
    )
    return f"temperature unknown: {why}; {action}"
