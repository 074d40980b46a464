"""Keep the machine awake while a campaign runs, and say when its power state slows it.

The research this tool serves lost a 12-fold slowdown to macOS background throttling and
sleep during multi-day runs. While an engine runs:
- macOS: `caffeinate -i -s -w <engine pid>` holds "prevent idle sleep" and "prevent
  system sleep (on AC)" assertions; caffeinate exits by itself when the engine does, even
  after kill -9, so nothing is left behind.
- Linux: `systemd-inhibit --what=sleep:idle ... tail --pid=<engine pid> -f /dev/null`
  when systemd-inhibit is installed (optional: without logind it exits at once, harmless).
- Elsewhere: nothing.

Low Power Mode and running on battery (both slow a Mac down) are read from `pmset -g`
and `pmset -g batt` by the pure parsers below and shown by `hpotui hw`.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

STARTUP_CHECK_S = 0.5


def keep_awake_command(
    pid: int,
    reason: str,
    *,
    platform: str = sys.platform,
    which: Callable[[str], str | None] = shutil.which,
) -> list[str] | None:
    """The command that holds this machine awake until process `pid` exits, or None."""
    if platform == "darwin" and which("caffeinate"):
        return ["caffeinate", "-i", "-s", "-w", str(pid)]
    if platform.startswith("linux") and which("systemd-inhibit") and which("tail"):
        return [
            "systemd-inhibit",
            "--what=sleep:idle",
            "--who=hpotui",
            f"--why={reason}",
            "--mode=block",
            "tail",
            f"--pid={pid}",
            "-f",
            "/dev/null",
        ]
    return None


class KeepAwake:
    """The running keep-awake process of one engine (`release` ends it early)."""

    def __init__(self, process: subprocess.Popen[bytes] | None, command: list[str] | None):
        self.process = process
        self.command = command

    @classmethod
    def hold(cls, pid: int, reason: str) -> KeepAwake:
        command = keep_awake_command(pid, reason)
        if command is None:
            return cls(None, None)
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            return cls(None, command)
        # systemd-inhibit without a system bus (containers) fails at once: find out
        # before saying the machine is held awake.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STARTUP_CHECK_S)
        return cls(process, command)

    @property
    def holding(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def release(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)


@dataclass(frozen=True)
class PowerState:
    """What slows a Mac down beyond heat; None = not said (not a Mac, or not printed)."""

    low_power_mode: bool | None = None
    on_battery: bool | None = None

    def words(self) -> str:
        parts = []
        if self.on_battery is not None:
            parts.append("on battery" if self.on_battery else "on AC power")
        if self.low_power_mode is not None:
            parts.append(f"Low Power Mode {'on' if self.low_power_mode else 'off'}")
        return ", ".join(parts) or "unknown"


_LOW_POWER = re.compile(r"^\s*(?:lowpowermode|powermode)\s+(\d+)\s*$", re.MULTILINE)
_DRAWING = re.compile(r"Now drawing from '([^']+)'")


def parse_power_state(pmset_g: str, pmset_batt: str) -> PowerState:
    """`pmset -g` ("lowpowermode 1"; newer macOS: "powermode 1") and `pmset -g batt`
    ("Now drawing from 'Battery Power'")."""
    low = _LOW_POWER.search(pmset_g)
    drawing = _DRAWING.search(pmset_batt)
    return PowerState(
        low_power_mode=None if low is None else int(low.group(1)) != 0,
        on_battery=None if drawing is None else drawing.group(1).strip() == "Battery Power",
    )


def read_power_state(
    run: Callable[[list[str]], tuple[int, str]], platform: str = sys.platform
) -> PowerState | None:
    """The Mac's power state through `run` (argv -> (code, stdout)); None elsewhere."""
    if platform != "darwin":
        return None
    outputs = []
    for argv in (["pmset", "-g"], ["pmset", "-g", "batt"]):
        try:
            code, out = run(argv)
        except OSError:
            code, out = 1, ""
        outputs.append(out if code == 0 else "")
    return parse_power_state(*outputs)
