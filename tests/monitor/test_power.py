"""Power state: recorded `pmset` outputs, a laptop's sysfs power_supply tree (and
variations of it), the probes carrying it in every sample at most every 10 s."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from monitor_helpers import FIXTURES, Runner, fixture_text

from engine.monitor.linux import LinuxProbe
from engine.monitor.macos import MacProbe
from engine.monitor.power import (
    POWER_EVERY_S,
    PowerReader,
    parse_power_state,
    read_linux_power,
    read_mac_power,
)
from engine.monitor.sample import PowerState

LAPTOP = FIXTURES / "sysfs_laptop"
LOW_POWER = fixture_text("pmset_g_lowpowermode.txt")
NORMAL = fixture_text("pmset_g_powermode.txt")
BATTERY = fixture_text("pmset_batt_battery.txt")
AC = fixture_text("pmset_batt_ac.txt")


def test_pmset_outputs_give_battery_and_low_power_mode() -> None:
    assert parse_power_state(LOW_POWER, BATTERY) == PowerState(on_battery=True, low_power_mode=True)
    assert parse_power_state(NORMAL, AC) == PowerState(on_battery=False, low_power_mode=False)
    assert parse_power_state("", "") == PowerState()  # not printed: unknown, never "off"
    assert PowerState(on_battery=True, low_power_mode=True).words() == (
        "on battery, Low Power Mode on"
    )
    assert PowerState(on_battery=False, keep_awake=True).words() == "on AC power, kept awake"
    assert PowerState().words() == "unknown"


def test_a_failing_or_missing_pmset_reads_unknown() -> None:
    failing = read_mac_power(lambda argv: (1, "garbage"))
    assert failing == PowerState()
    half = Runner({"pmset -g": (0, LOW_POWER)})  # `pmset -g batt` missing: OSError
    assert read_mac_power(half) == PowerState(low_power_mode=True, on_battery=None)


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    shutil.copytree(LAPTOP, root)
    return root


def _supplies(root: Path) -> Path:
    return root / "class" / "power_supply"


def test_the_unplugged_laptop_is_on_battery_and_has_no_low_power_mode() -> None:
    assert read_linux_power(LAPTOP) == PowerState(on_battery=True, low_power_mode=None)


def test_plugged_in_is_on_ac_whatever_the_battery_says(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (_supplies(root) / "AC" / "online").write_text("1\n")
    (_supplies(root) / "BAT0" / "status").write_text("Not charging\n")  # a charge limit
    assert read_linux_power(root).on_battery is False


def test_battery_status_alone_decides_without_a_charger_entry(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    shutil.rmtree(_supplies(root) / "AC")
    assert read_linux_power(root).on_battery is True  # Discharging
    for status, expected in (("Charging", False), ("Full", False), ("Unknown", None)):
        (_supplies(root) / "BAT0" / "status").write_text(f"{status}\n")
        assert read_linux_power(root).on_battery is expected, status


def test_no_supply_or_only_a_mouse_battery_is_unknown_not_ac(tmp_path: Path) -> None:
    assert read_linux_power(tmp_path).on_battery is None  # a desktop or VM exposes none
    root = _tree(tmp_path)
    shutil.rmtree(_supplies(root) / "AC")
    shutil.rmtree(_supplies(root) / "BAT0")
    assert read_linux_power(root).on_battery is None  # the mouse is not the machine


def test_an_unreadable_value_is_unknown(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    shutil.rmtree(_supplies(root) / "BAT0")
    online = _supplies(root) / "AC" / "online"
    online.unlink()
    online.mkdir()  # reading it raises OSError, as a driver's EIO would
    assert read_linux_power(root).on_battery is None


def test_power_reader_reads_at_most_every_interval() -> None:
    now = [0.0]
    reads: list[float] = []

    def read() -> PowerState:
        reads.append(now[0])
        return PowerState(on_battery=len(reads) > 1)

    reader = PowerReader(read, lambda: now[0])
    seen = []
    for t in (0.0, 1.0, POWER_EVERY_S - 0.1, POWER_EVERY_S, POWER_EVERY_S + 5):
        now[0] = t
        seen.append(reader.latest().on_battery)
    assert reads == [0.0, POWER_EVERY_S]
    assert seen == [False, False, False, True, True]


def test_linux_probe_carries_the_power_state(tmp_path: Path) -> None:
    with LinuxProbe(sysfs_root=LAPTOP) as probe:
        sample = probe.sample()
    assert sample.power == PowerState(on_battery=True)
    assert sample.to_dict()["power"] == {
        "on_battery": True,
        "low_power_mode": None,
        "keep_awake": None,  # the engine's to say
    }


@pytest.mark.parametrize(
    ("pmset_g", "batt", "expected"),
    [
        (LOW_POWER, BATTERY, PowerState(on_battery=True, low_power_mode=True)),
        (NORMAL, AC, PowerState(on_battery=False, low_power_mode=False)),
    ],
    ids=["battery-low-power", "ac"],
)
def test_mac_probe_carries_the_power_state_read_every_ten_seconds(
    pmset_g: str, batt: str, expected: PowerState
) -> None:
    now = [0.0]
    runner = Runner(
        {
            "sudo -n true": (1, ""),
            "pmset -g therm": (0, fixture_text("pmset_therm_nominal.txt")),
            "pmset -g": (0, pmset_g),
            "pmset -g batt": (0, batt),
        }
    )
    probe = MacProbe(runner=runner, macmon_argv=[], clock=lambda: now[0])
    try:
        for t in (0.0, 1.0, 2.0, POWER_EVERY_S + 1):
            now[0] = t
            sample = probe.sample()
    finally:
        probe.close()
    assert sample.power == expected
    assert runner.calls.count("pmset -g batt") == 2
