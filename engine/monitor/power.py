"""The machine's power state, read by the probes into `HardwareSample.power`.

Running on battery (both OSes) and Low Power Mode (macOS) slow a machine down as surely
as heat does, and a laptop's first sleep ends a multi-day run. What each OS tells:
- macOS: `pmset -g` ("lowpowermode 1"; newer macOS: "powermode 1") and `pmset -g batt`
  ("Now drawing from 'Battery Power'"), parsed by the pure functions below.
- Linux: `/sys/class/power_supply/*`: a mains or USB supply's `online`, a battery's
  `status` ("Discharging" = on battery). Supplies with `scope` "Device" (a mouse's or a
  headset's battery) are not the machine's. Linux has no Low Power Mode: always None.
A value that cannot be read is None ("unknown"), never a guess: a desktop or a VM that
exposes no supply is not assumed to be on AC. `keep_awake` is filled in by the engine,
which holds the assertion (engine/monitor/keep_awake.py); a probe leaves it None.

Power changes rarely and `pmset` is a subprocess: `PowerReader` reads at most every
`POWER_EVERY_S`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from engine.monitor.sample import PowerState

POWER_EVERY_S = 10.0
SYSFS = Path("/sys")

# (argv) -> (exit code, stdout); raises OSError when the command does not exist.
Runner = Callable[[list[str]], tuple[int, str]]

_LOW_POWER = re.compile(r"^\s*(?:lowpowermode|powermode)\s+(\d+)\s*$", re.MULTILINE)
_DRAWING = re.compile(r"Now drawing from '([^']+)'")


def parse_power_state(pmset_g: str, pmset_batt: str) -> PowerState:
    """`pmset -g` and `pmset -g batt` outputs; what they do not print stays unknown."""
    low = _LOW_POWER.search(pmset_g)
    drawing = _DRAWING.search(pmset_batt)
    return PowerState(
        low_power_mode=None if low is None else int(low.group(1)) != 0,
        on_battery=None if drawing is None else drawing.group(1).strip() == "Battery Power",
    )


def read_mac_power(run: Runner) -> PowerState:
    """A Mac's power state through `run`; a failing or missing `pmset` reads unknown."""
    outputs = []
    for argv in (["pmset", "-g"], ["pmset", "-g", "batt"]):
        try:
            code, out = run(argv)
        except OSError:
            code, out = 1, ""
        outputs.append(out if code == 0 else "")
    return parse_power_state(*outputs)


def read_linux_power(root: Path = SYSFS) -> PowerState:
    """On battery from `root`/class/power_supply (a fake tree in tests)."""
    online: list[bool] = []  # mains, USB, wireless chargers
    batteries: list[str | None] = []  # their status
    for supply in sorted((root / "class" / "power_supply").glob("*")):
        if _read(supply / "scope") == "Device":
            continue
        kind = _read(supply / "type")
        if kind == "Battery":
            batteries.append(_read(supply / "status"))
        elif kind is not None and kind != "UPS":
            state = _read(supply / "online")
            if state in ("0", "1"):
                online.append(state == "1")
    on_battery: bool | None = None
    if any(online):
        on_battery = False
    elif "Discharging" in batteries or (online and batteries):
        on_battery = True  # a battery drains, or every charger says it is unplugged
    elif "Charging" in batteries or "Full" in batteries:
        on_battery = False
    return PowerState(on_battery=on_battery)


class PowerReader:
    """`read()` at most every `every_s` (on the probe's clock); the last value between."""

    def __init__(
        self,
        read: Callable[[], PowerState],
        clock: Callable[[], float],
        every_s: float = POWER_EVERY_S,
    ) -> None:
        self._read = read
        self._clock = clock
        self._every_s = every_s
        self._at: float | None = None
        self._last = PowerState()

    def latest(self) -> PowerState:
        now = self._clock()
        if self._at is None or now - self._at >= self._every_s:
            self._at = now
            self._last = self._read()
        return self._last


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None
