"""The hardware panel draws the power state on one line: on battery / AC, Low Power Mode
(macOS only), and whether the engine keeps the machine awake, from samples the real
probes take of a laptop's sysfs tree and of recorded `pmset` output."""

from __future__ import annotations

from dataclasses import replace

from engine.monitor.linux import LinuxProbe
from engine.monitor.macos import MacProbe
from engine.monitor.sample import HardwareSample
from engine.protocol import HardwareSampled
from hpotui.app import HpotuiApp
from tests.monitor.monitor_helpers import FIXTURES, Runner, fixture_text
from tests.tui.conftest import replay_app, settled, until
from tests.tui.fake_link import ScriptedLink, recorded_events


def _screen_lines(app: HpotuiApp) -> list[str]:
    """What the terminal shows, one string per row."""
    strips = app.screen._compositor.render_strips()
    return ["".join(segment.text for segment in strip) for strip in strips]


def _power_line(app: HpotuiApp) -> str | None:
    """The panel's power line as drawn (up to the panel's right border), or None."""
    for line in _screen_lines(app):
        start = line.find("│power ")
        if start >= 0:
            return line[start + 1 :].split("│")[0].rstrip()
    return None


def _kept_awake(sample: HardwareSample, held: bool | None) -> HardwareSampled:
    """As the engine sends it: the probe's sample plus its keep-awake hold."""
    return HardwareSampled(
        sample=replace(sample, power=replace(sample.power, keep_awake=held)).to_dict()
    )


def _mac_sample() -> HardwareSample:
    runner = Runner(
        {
            "sudo -n true": (1, ""),
            "pmset -g therm": (0, fixture_text("pmset_therm_nominal.txt")),
            "pmset -g": (0, fixture_text("pmset_g_lowpowermode.txt")),
            "pmset -g batt": (0, fixture_text("pmset_batt_battery.txt")),
        }
    )
    with MacProbe(runner=runner, macmon_argv=[]) as probe:
        return probe.sample()


async def test_the_panel_shows_battery_low_power_mode_and_keep_awake_on_one_line() -> None:
    with LinuxProbe(sysfs_root=FIXTURES / "sysfs_laptop") as probe:
        laptop = probe.sample()  # unplugged: on battery
    with LinuxProbe(sysfs_root=FIXTURES / "sysfs_laptop" / "class" / "thermal") as probe:
        no_supply = probe.sample()  # no power_supply: unknown
    link = ScriptedLink(recorded_events())
    app, _ = replay_app(link)
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, len(recorded_events()))
        assert _power_line(app) is None  # recorded samples predate power: no line

        link.push(_kept_awake(laptop, True))
        await until(pilot, lambda: _power_line(app) is not None)
        assert _power_line(app) == "power on battery · kept awake"  # no Low Power Mode on Linux

        link.push(_kept_awake(_mac_sample(), False))
        await until(pilot, lambda: "Low Power Mode" in (_power_line(app) or ""))
        assert _power_line(app) == "power on battery · Low Power Mode on · not kept awake"

        link.push(_kept_awake(no_supply, None))
        await until(pilot, lambda: "power unknown" in (_power_line(app) or ""))
        assert _power_line(app) == "power unknown · keep-awake unknown"
