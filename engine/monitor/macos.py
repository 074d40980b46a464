"""The macOS probe (Apple silicon, no sudo needed).

- CPU, memory, swap, processes: psutil (`engine.monitor.system`).
- Thermal pressure: `pmset -g therm`, run at most every `PMSET_EVERY_S` (a subprocess
  each second would cost more than the rest of the sample).
- Temperatures and GPU activity: `macmon pipe` JSON lines when macmon is on PATH, read
  on a background thread. Without it, temperatures are unavailable with the reason
  (macOS exposes no die temperature to unprivileged command-line tools).
- On battery and Low Power Mode: `pmset -g` and `pmset -g batt`, at most every
  `POWER_EVERY_S` (engine/monitor/power.py).
- `powermetrics` only when passwordless sudo works (`sudo -n true`); its pressure level
  wins over pmset's.
- MPS memory via torch.mps, only when torch is already imported in this process (an
  import costs seconds and hundreds of MB; MPS allocations are per process anyway).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from engine.monitor.macos_parsers import (
    MacmonSample,
    PmsetTherm,
    PowermetricsSample,
    parse_macmon_line,
    parse_pmset_therm,
    parse_powermetrics,
    split_powermetrics,
)
from engine.monitor.nvidia import NvmlGpus
from engine.monitor.power import PowerReader, read_mac_power
from engine.monitor.probe import Probe
from engine.monitor.sample import GpuSample, HardwareSample, Reading
from engine.monitor.stream import StreamReader
from engine.monitor.system import SystemReader, max_temperature

PMSET_EVERY_S = 5.0
MACMON_ARGV = ["macmon", "pipe", "-i", "1000"]
POWERMETRICS_ARGV = ["sudo", "-n", "powermetrics", "--samplers", "thermal", "-i", "2000"]
NO_MACMON = "no sensor exposed without sudo: install macmon (brew install macmon)"

# (argv) -> (exit code, stdout); raises OSError when the command does not exist.
Runner = Callable[[list[str]], tuple[int, str]]


def run_command(argv: list[str], timeout_s: float = 5.0) -> tuple[int, str]:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return 124, ""
    return done.returncode, done.stdout


class MacProbe(Probe):
    """psutil + pmset + macmon (+ powermetrics with passwordless sudo) + torch.mps."""

    def __init__(
        self,
        campaign_pids: Callable[[], list[int]] | None = None,
        gpus: NvmlGpus | None = None,
        *,
        runner: Runner = run_command,
        macmon_argv: list[str] | None = None,
        powermetrics_argv: list[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._system = SystemReader(campaign_pids, clock)
        self._runner = runner
        self._clock = clock
        self._gpus = gpus  # eGPUs are not a thing on Apple silicon; kept for symmetry
        self._pmset: PmsetTherm = PmsetTherm(pressure=None, unavailable="not read yet")
        self._pmset_at: float | None = None
        self._power = PowerReader(lambda: read_mac_power(self._runner), clock)
        self._macmon: StreamReader[MacmonSample] | None = None
        self._macmon_missing: str | None = None
        argv = macmon_argv
        if argv is None:  # not given: use macmon when it is on PATH ([] = never)
            argv = MACMON_ARGV if shutil.which("macmon") else []
        if not argv:
            self._macmon_missing = "macmon not installed (brew install macmon)"
        else:
            self._macmon = StreamReader("macmon", argv, parse_macmon_line)
        self._powermetrics: StreamReader[PowermetricsSample] | None = None
        self._powermetrics_missing = "powermetrics needs sudo (passwordless sudo not set up)"
        if powermetrics_argv is not None or self._sudo_works():
            self._powermetrics = StreamReader(
                "powermetrics",
                powermetrics_argv or POWERMETRICS_ARGV,
                parse_powermetrics,
                splitter=split_powermetrics,
                max_age_s=15.0,
            )

    def _sudo_works(self) -> bool:
        try:
            code, _ = self._runner(["sudo", "-n", "true"])
        except OSError:
            return False
        return code == 0

    def pmset(self) -> PmsetTherm:
        """`pmset -g therm`, re-read at most every PMSET_EVERY_S."""
        now = self._clock()
        if self._pmset_at is not None and now - self._pmset_at < PMSET_EVERY_S:
            return self._pmset
        self._pmset_at = now
        try:
            code, out = self._runner(["pmset", "-g", "therm"])
        except OSError as exc:
            self._pmset = PmsetTherm(pressure=None, unavailable=f"pmset not runnable: {exc}")
            return self._pmset
        self._pmset = (
            parse_pmset_therm(out)
            if code == 0
            else PmsetTherm(pressure=None, unavailable=f"pmset -g therm exited with code {code}")
        )
        return self._pmset

    def sample(self) -> HardwareSample:
        part = self._system.read()
        pmset = self.pmset()
        macmon, macmon_reason = (
            self._macmon.latest() if self._macmon else (None, self._macmon_missing)
        )
        power, power_reason = (
            self._powermetrics.latest()
            if self._powermetrics
            else (None, self._powermetrics_missing)
        )
        temps: dict[str, Reading] = {}
        if macmon is not None:
            temps.update(macmon.temperatures_c)
        if power is not None:
            temps.update(power.temperatures_c)
        pressure = (power.pressure if power else None) or pmset.pressure
        pressure_reason = (
            None if pressure else "; ".join(r for r in (pmset.unavailable, power_reason) if r)
        )
        throttled = part.cpu_throttled
        if pmset.cpu_speed_limit is not None:
            throttled = pmset.cpu_speed_limit < 100
        gpus, gpu_reason = self._apple_gpu(macmon, macmon_reason)
        return part.sample(
            "macos",
            cpu_throttled=throttled,
            temperatures_c=temps,
            temperature_max_c=max_temperature(
                temps, NO_MACMON if self._macmon is None else f"no sensor ({macmon_reason})"
            ),
            thermal_pressure=pressure,
            thermal_pressure_unavailable=pressure_reason,
            gpus=gpus,
            gpu_unavailable=gpu_reason,
            accelerator_memory_bytes=mps_memory(),
            power=self._power.latest(),
        )

    def _apple_gpu(
        self, macmon: MacmonSample | None, reason: str | None
    ) -> tuple[list[GpuSample], str | None]:
        if macmon is None:
            return [], f"Apple GPU activity needs macmon: {reason}"
        memory = mps_memory()
        gpu = GpuSample(
            index=0,
            name="Apple GPU",
            utilization_pct=macmon.gpu_utilization_pct,
            memory_used_bytes=memory,
            memory_total_bytes=macmon.ram_total_bytes,  # unified memory
            temperature_c=macmon.temperatures_c.get(
                "gpu (macmon avg)", Reading.missing("not in macmon output")
            ),
            power_w=macmon.gpu_power_w,
            throttle_reasons=None,
        )
        return [gpu], None

    def wait_ready(self, timeout_s: float) -> None:
        for reader in (self._macmon, self._powermetrics):
            if reader is not None:
                reader.wait_first(timeout_s)

    def close(self) -> None:
        for reader in (self._macmon, self._powermetrics):
            if reader is not None:
                reader.close()
        if self._gpus is not None:
            self._gpus.close()


def mps_memory() -> Reading:
    """Bytes the MPS driver holds for this process, when torch is already loaded."""
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return Reading.missing("torch not loaded in the monitoring process")
    try:
        if not torch.backends.mps.is_available():
            return Reading.missing("MPS not available")
        return Reading.of(float(torch.mps.driver_allocated_memory()))
    except (AttributeError, RuntimeError) as exc:
        return Reading.missing(f"torch.mps unreadable: {exc}")
