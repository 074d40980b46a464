"""`hpotui hw` as a user runs it: a real process on this machine."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.monitor.sample import HardwareSample

# Point 1 of the issue: every field a sample must carry.
FIELDS = {
    "cpu_percent_per_core",
    "cpu_freq_mhz",
    "cpu_freq_max_mhz",
    "cpu_throttled",
    "load_avg",
    "memory_used_bytes",
    "memory_available_bytes",
    "memory_total_bytes",
    "swap_used_bytes",
    "swap_growth_bytes_per_s",
    "campaign_cpu_percent",
    "campaign_rss_bytes",
    "temperatures_c",
    "temperature_max_c",
    "thermal_pressure",
    "thermal_pressure_unavailable",
    "gpus",
    "gpu_unavailable",
    "accelerator_memory_bytes",
}


def hw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpotui.cli", "hw", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_json_prints_one_sample_with_every_field() -> None:
    done = hw("--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    sample = json.loads(lines[0])
    assert set(sample) >= FIELDS
    assert set(sample) == {f for f in HardwareSample.__dataclass_fields__}
    for name in (
        "cpu_freq_mhz",
        "cpu_freq_max_mhz",
        "temperature_max_c",
        "accelerator_memory_bytes",
    ):
        reading = sample[name]
        assert (reading["value"] is None) != (reading["unavailable"] is None), name
    assert (sample["thermal_pressure"] is None) != (sample["thermal_pressure_unavailable"] is None)
    assert bool(sample["gpus"]) != bool(sample["gpu_unavailable"])
    if not sample["temperatures_c"]:  # this VM: no sensor, and the sample says so
        assert sample["temperature_max_c"] == {"value": None, "unavailable": "no sensor exposed"}


def test_table_names_what_is_unknown_and_why() -> None:
    done = hw()
    assert done.returncode == 0, done.stderr
    assert "cpu per core" in done.stdout and "temperature max" in done.stdout
    assert "thermal policy" in done.stdout
    if not _has_temperature_sensor():  # this VM: the table says so
        assert "unknown" in done.stdout and "no sensor exposed" in done.stdout


def _has_temperature_sensor() -> bool:
    import psutil

    return bool(psutil.sensors_temperatures()) or bool(
        list(Path("/sys/class/thermal").glob("thermal_zone*"))
        + list(Path("/sys/class/hwmon").glob("hwmon*/temp*_input"))
    )


def test_watch_repeats_at_the_interval() -> None:
    done = hw("--watch", "--json", "--interval", "0.2", "--count", "3")
    assert done.returncode == 0, done.stderr
    samples = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(samples) == 3
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(samples)]
    assert all(0.1 < g < 2.0 for g in gaps)


def test_bad_interval_is_a_one_line_user_error() -> None:
    done = hw("--watch", "--interval", "-1")
    assert done.returncode == 2
    assert done.stderr.strip() == "hpotui: command line: --interval must be > 0 seconds, got -1"
    assert done.stdout == ""


def test_watch_table_when_piped_prints_one_table_per_sample() -> None:
    done = hw("--watch", "--interval", "0.2", "--count", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("thermal policy") == 2


def test_reasons_print_literally_and_the_install_hint_only_with_an_nvidia_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rich.console import Console

    from engine.monitor.factory import make_probe
    from engine.monitor.nvidia import INSTALL_HINT
    from engine.monitor.policy import ThermalPolicy
    from hpotui.commands import hw as command

    with make_probe() as probe:
        sample = dataclasses.replace(probe.sample(), gpus=[], gpu_unavailable=INSTALL_HINT)
    decision = ThermalPolicy(command.MonitorSpec()).update(sample, trial_running=False)

    def shown(with_nvidia: bool) -> str:
        monkeypatch.setattr(command, "nvidia_device_present", lambda: with_nvidia)
        console = Console(width=200, file=io.StringIO(), record=True)
        console.print(command.render(sample, decision, "", None))
        return console.export_text()

    assert "pip install 'hpotui[nvidia]'" in shown(True)  # rich markup did not eat [nvidia]
    without = shown(False)
    assert "pip install" not in without and "no NVIDIA GPU on this machine" in without
    assert "none (no campaign runs on this machine)" in without


def test_campaign_processes_are_shown_only_while_a_campaign_engine_runs(
    workspace: Path,
) -> None:
    folder = workspace / "outputs" / "demo"
    folder.mkdir(parents=True)
    (folder / "engine.pid").write_text("999999999\n")  # a dead engine's file
    env = {**os.environ, "HPOTUI_HOME": str(workspace)}
    done = subprocess.run(
        [sys.executable, "-m", "hpotui.cli", "hw"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "no campaign runs on this machine" in done.stdout, done.stderr
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / "engine.pid").write_text(f"{sleeper.pid}\n")
        done = subprocess.run(
            [sys.executable, "-m", "hpotui.cli", "hw"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert "demo:" in done.stdout and "rss" in done.stdout, done.stdout
    finally:
        sleeper.kill()
        sleeper.wait()


def _cached_choices(cache_dir: Path, n: int) -> None:
    """`n` run choices measured on this machine, in the autotune cache (as autotune
    writes them: engine.train.run_choice_cache)."""
    from engine.train.run_choice_cache import RunChoice, machine, write_entry

    for k in range(n):
        key = f"{machine()} | cpu | d{16 * (k + 1)} L1 h2 n4 b64"
        choice = RunChoice(precision="fp32", attention="math", threads=1, source="measured")
        write_entry(cache_dir / "autotune.json", key, choice)


def test_the_table_counts_the_run_choices_and_lists_them_with_cache(tmp_path: Path) -> None:
    """The autotune cache is machine-wide (every user's campaigns): `hpotui hw` printed
    its 500 entries; now one line counts them and `--cache` lists them."""
    env = {**os.environ, "HPOTUI_CACHE_DIR": str(tmp_path)}
    _cached_choices(tmp_path, 30)

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "hpotui.cli", "hw", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    plain = run()
    assert "30 measured here; hpotui hw --cache lists them" in plain
    assert "d16 L1" not in plain and len(plain.splitlines()) < 40
    listed = run("--cache")
    assert all(f"d{16 * (k + 1)} L1" in listed for k in range(30))


def test_watch_on_a_terminal_fits_it() -> None:
    """--watch redraws a compact table that fits an 80x24 terminal."""
    from rich.console import Console

    from engine.campaign.model import MonitorSpec
    from engine.monitor.factory import make_probe
    from engine.monitor.policy import ThermalPolicy
    from hpotui.commands.hw import render

    with make_probe() as probe:
        sample = probe.sample()
    decision = ThermalPolicy(MonitorSpec()).update(sample, trial_running=False)
    console = Console(width=80, height=24, record=True, file=io.StringIO())
    console.print(render(sample, decision, "temperature unknown: no sensor exposed", compact=True))
    lines = console.export_text().splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80, lines
    assert any("thermal policy" in line for line in lines)
