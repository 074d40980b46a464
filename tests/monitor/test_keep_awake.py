"""Keeping the machine awake: the commands built per platform, and a real keep-awake
process that ends with the process it watches (power state: test_power.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from engine.monitor.keep_awake import KeepAwake, keep_awake_command


def _which(*present: str):  # type: ignore[no-untyped-def]
    return lambda name: f"/usr/bin/{name}" if name in present else None


def test_macos_holds_idle_and_system_sleep_until_the_engine_exits() -> None:
    command = keep_awake_command(4242, "campaign x", platform="darwin", which=_which("caffeinate"))
    assert command == ["caffeinate", "-i", "-s", "-w", "4242"]


def test_linux_uses_systemd_inhibit_when_there_is_one() -> None:
    command = keep_awake_command(
        77, "hpotui campaign x", platform="linux", which=_which("systemd-inhibit", "tail")
    )
    assert command is not None and command[0] == "systemd-inhibit"
    assert "--what=sleep:idle" in command and "--why=hpotui campaign x" in command
    assert command[-4:] == ["tail", "--pid=77", "-f", "/dev/null"]  # ends with the engine
    assert keep_awake_command(77, "x", platform="linux", which=_which("tail")) is None
    assert keep_awake_command(77, "x", platform="darwin", which=_which()) is None
    assert keep_awake_command(77, "x", platform="win32", which=_which("caffeinate")) is None


@pytest.mark.skipif(sys.platform != "linux", reason="uses GNU tail --pid")
def test_a_real_hold_ends_when_the_watched_process_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keep-awake process must not outlive the engine (even one killed with -9)."""
    import engine.monitor.keep_awake as keep_awake

    # `tail --pid` alone stands for the inhibitor here (no system bus in CI containers)
    monkeypatch.setattr(
        keep_awake,
        "keep_awake_command",
        lambda pid, reason: ["tail", f"--pid={pid}", "-f", "/dev/null"],
    )
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    hold = KeepAwake.hold(engine.pid, "test")
    assert hold.holding
    engine.kill()
    engine.wait()
    deadline = time.monotonic() + 60
    while hold.holding and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not hold.holding
    hold.release()


def test_an_inhibitor_that_fails_at_once_is_not_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.monitor.keep_awake as keep_awake

    monkeypatch.setattr(keep_awake, "keep_awake_command", lambda pid, reason: ["false"])
    assert not KeepAwake.hold(1, "test").holding
