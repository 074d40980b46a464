"""Keep the machine awake while a campaign runs.

The research this tool serves lost a 12-fold slowdown to macOS background throttling and
sleep during multi-day runs. While an engine runs:
- macOS: `caffeinate -i -s -w <engine pid>` holds "prevent idle sleep" and "prevent
  system sleep (on AC)" assertions; caffeinate exits by itself when the engine does, even
  after kill -9, so nothing is left behind.
- Linux: `systemd-inhibit --what=sleep:idle ... tail --pid=<engine pid> -f /dev/null`
  when systemd-inhibit is installed (optional: without logind it exits at once, harmless).
- Elsewhere: nothing.

Whether the hold is on travels in every hardware sample (`PowerState.keep_awake`, set
by the engine), beside on-battery and Low Power Mode (engine/monitor/power.py).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Callable

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
