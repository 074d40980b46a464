"""The probe interface: one call returns one typed `HardwareSample`.

`engine.monitor.factory.make_probe()` picks the implementation for this machine (Linux or
macOS, plus NVIDIA GPUs through NVML when nvidia-ml-py and a GPU are present).
Implementations live in
`engine.monitor.linux`, `engine.monitor.macos` and `engine.monitor.nvidia`; the pieces
every OS shares (CPU, memory, swap growth, the campaign's processes) in
`engine.monitor.system`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from engine.monitor.sample import HardwareSample


class Probe(ABC):
    """Reads the machine's sensors into a `HardwareSample`.

    Rules every implementation keeps:
    - `sample()` never raises because a sensor is missing, unreadable or needs
      privileges: that sensor becomes `Reading.missing(reason)` (or the sample's
      `*_unavailable` field) with a reason a user can act on ("no sensor exposed",
      "needs sudo", "macmon not installed").
    - Never invent a number: no -1, no 0, no last-known value passed off as current.
      A value outside what the hardware can report is unavailable, with the raw value in
      the reason.
    - Cheap: it is called every second for days; all of it must cost well under 1% of
      one core (bench/monitor_overhead.py). Slow sources (subprocesses) are sampled in
      the background or less often, never blocking for seconds.
    - Rates (CPU %, swap growth) are measured between consecutive calls; the first call
      after construction measures from construction.
    - Called from one thread at a time (the monitor thread); `close()` releases
      subprocesses and libraries and may be called more than once.
    """

    @abstractmethod
    def sample(self) -> HardwareSample:
        """One reading of every sensor, now."""

    def wait_ready(self, timeout_s: float) -> None:  # noqa: B027 - optional hook
        """Block (at most `timeout_s`) until background sources have a first reading;
        for one-shot use (`hpotui hw`). The monitor thread never needs it."""

    def close(self) -> None:  # noqa: B027 - optional hook, most probes hold nothing
        """Release background processes and libraries (idempotent)."""

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
