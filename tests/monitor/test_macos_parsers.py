from __future__ import annotations

import pytest
from monitor_helpers import fixture_text

from engine.monitor.macos_parsers import (
    parse_macmon_line,
    parse_pmset_therm,
    parse_powermetrics,
    split_powermetrics,
)


def test_pmset_apple_silicon_with_nothing_recorded_is_nominal() -> None:
    therm = parse_pmset_therm(fixture_text("pmset_therm_nominal.txt"))
    assert therm.pressure == "nominal"
    assert therm.cpu_speed_limit is None and therm.thermal_warning_level is None


def test_pmset_cpu_power_notify_block_at_full_speed() -> None:
    therm = parse_pmset_therm(fixture_text("pmset_therm_cpu_power_notify.txt"))
    assert therm.pressure == "nominal"
    assert (therm.cpu_speed_limit, therm.cpu_scheduler_limit, therm.cpu_available_cpus) == (
        100,
        100,
        12,
    )


def test_pmset_speed_limit_below_100_is_fair_and_throttled() -> None:
    therm = parse_pmset_therm(fixture_text("pmset_therm_intel_throttled.txt"))
    assert therm.pressure == "fair"
    assert therm.cpu_speed_limit == 70


def test_pmset_thermlog_last_value_wins() -> None:
    log = fixture_text("pmset_thermlog.txt")
    therm = parse_pmset_therm(log)
    assert therm.thermal_warning_level == 10 and therm.pressure == "critical"
    assert therm.cpu_speed_limit == 62
    before_crisis = log[: log.index("13:15:02")]
    assert parse_pmset_therm(before_crisis).pressure == "serious"  # level 5 = Danger


def test_pmset_unrecognised_output_is_unavailable_not_nominal() -> None:
    for text in ("", "pmset: command failed\n"):
        therm = parse_pmset_therm(text)
        assert therm.pressure is None
        assert therm.unavailable and "unrecognised" in therm.unavailable


def test_macmon_line_idle_and_loaded() -> None:
    idle, loaded, no_sensor = fixture_text("macmon_pipe.jsonl").splitlines()
    first = parse_macmon_line(idle)
    assert first.temperatures_c["cpu (macmon avg)"].value == pytest.approx(43.73614)
    assert first.temperatures_c["gpu (macmon avg)"].value == pytest.approx(36.95167)
    assert first.gpu_utilization_pct.value == pytest.approx(2.1497859)
    assert first.gpu_freq_mhz.value == 461
    assert first.gpu_power_w.value == pytest.approx(0.017451683)
    assert first.ram_total_bytes.value == 25769803776
    hot = parse_macmon_line(loaded)
    assert hot.temperatures_c["cpu (macmon avg)"].value == pytest.approx(88.41027)
    assert hot.gpu_utilization_pct.value == pytest.approx(94.12231)
    # macmon writes 0.0 when it finds no sensor: that is unknown, never 0 C
    cold = parse_macmon_line(no_sensor)
    assert all(r.value is None for r in cold.temperatures_c.values())
    assert "no sensor" in str(cold.temperatures_c["cpu (macmon avg)"].unavailable)


def test_macmon_garbage_and_missing_fields() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        parse_macmon_line("Error: IOReport not available")
    with pytest.raises(ValueError, match="object"):
        parse_macmon_line("[1, 2]")
    bare = parse_macmon_line('{"timestamp": "x"}')
    assert bare.temperatures_c == {}
    assert bare.gpu_utilization_pct.value is None and bare.gpu_utilization_pct.unavailable


def test_powermetrics_thermal_samples_split_and_parsed() -> None:
    lines = fixture_text("powermetrics_thermal.txt").splitlines()
    record, rest = split_powermetrics(lines)
    assert parse_powermetrics("\n".join(record)).pressure == "heavy"  # the last complete one
    assert rest and rest[0].startswith("*** Sampled system activity")
    # fed line by line, as the stream reader does: the first sample completes first
    buffered: list[str] = []
    pressures = []
    for line in lines:
        record, buffered = split_powermetrics([*buffered, line])
        if record:
            pressures.append(parse_powermetrics("\n".join(record)).pressure)
    assert pressures == ["nominal", "heavy"]


def test_powermetrics_smc_die_temperatures() -> None:
    sample = parse_powermetrics(fixture_text("powermetrics_smc_intel.txt"))
    assert sample.pressure == "nominal"
    assert sample.temperatures_c["cpu die (powermetrics)"].value == pytest.approx(50.18)
    assert sample.temperatures_c["gpu die (powermetrics)"].value == pytest.approx(50.38)
    failed = parse_powermetrics("CPU die temperature: -1.00 C")
    assert failed.temperatures_c["cpu die (powermetrics)"].value is None  # the -1 of item 12
