"""`hpotui hw`: what the hardware monitor sees, for users and for checks.

    hpotui hw                   one sample as a table
    hpotui hw --json            one sample as one JSON line (HardwareSample.to_dict())
    hpotui hw --watch           a sample every --interval seconds until Ctrl-C
    hpotui hw --watch --json    JSON lines, one per sample

The table also shows what the thermal policy (default thresholds) would decide.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

from engine.campaign.model import MonitorSpec
from engine.errors import UserError
from engine.monitor.keep_awake import PowerState, read_power_state
from engine.monitor.policy import PolicyDecision, ThermalPolicy
from engine.monitor.probe import make_probe
from engine.monitor.sample import HardwareSample, Reading

# CPU % needs two readings: the first sample measures from probe creation.
WARM_UP_S = 0.5
READY_TIMEOUT_S = 2.5  # macmon's first line arrives after about one second


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "hw",
        help="show CPU, memory, temperatures and GPUs as the monitor sees them",
        description="Sample the hardware monitor: every sensor, or why it is unavailable.",
    )
    parser.add_argument("--json", action="store_true", help="print samples as JSON lines")
    parser.add_argument("--watch", action="store_true", help="repeat until Ctrl-C")
    parser.add_argument(
        "--interval",
        type=float,
        default=MonitorSpec().interval_s,
        metavar="S",
        help="seconds between samples with --watch (default: %(default)s)",
    )
    parser.add_argument(
        "--count", type=int, default=None, help="with --watch: stop after N samples"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise UserError(
            f"--interval must be > 0 seconds, got {args.interval:g}", where="command line"
        )
    if args.count is not None and args.count < 1:
        raise UserError(f"--count must be >= 1, got {args.count}", where="command line")
    count = (args.count or 0) if args.watch else 1
    from engine.monitor.macos import run_command

    power = read_power_state(run_command)  # Low Power Mode, battery: macOS only
    policy = ThermalPolicy(MonitorSpec())
    reason = ""
    with make_probe() as probe:
        time.sleep(min(WARM_UP_S, args.interval))
        probe.wait_ready(READY_TIMEOUT_S)
        # a redrawn table on a terminal; one table per sample when piped
        live = _live() if args.watch and not args.json and sys.stdout.isatty() else None
        taken = 0
        next_at = time.monotonic()
        try:
            while True:
                sample = probe.sample()
                decision = policy.update(sample, trial_running=False)
                reason = decision.transition[2] if decision.transition else reason
                if args.json:
                    row = sample.to_dict()
                    if power is not None:
                        row["power"] = dataclasses.asdict(power)
                    print(json.dumps(row, allow_nan=False), flush=True)
                elif live is not None:
                    live.update(render(sample, decision, reason, power))
                else:
                    _print(render(sample, decision, reason, power))
                taken += 1
                if count and taken >= count:
                    break
                next_at += args.interval
                time.sleep(max(0.0, next_at - time.monotonic()))
        except KeyboardInterrupt:  # the normal end of --watch
            pass
        finally:
            if live is not None:
                live.stop()
    return 0


def _live() -> Any:
    from rich.live import Live

    class _Refreshing(Live):
        """A Live that redraws on each new sample instead of on a timer."""

        def update(self, renderable: Any, *, refresh: bool = True) -> None:
            super().update(renderable, refresh=refresh)

    live = _Refreshing(auto_refresh=False)
    live.start()
    return live


def _print(renderable: Any) -> None:
    from rich.console import Console

    Console().print(renderable)


def render(
    sample: HardwareSample, decision: PolicyDecision, reason: str, power: PowerState | None = None
) -> Any:
    """A rich table of one sample: every sensor, or why it is unavailable."""
    from rich.table import Table

    table = Table(title=f"hpotui hw · {sample.platform} · {len(sample.cpu_percent_per_core)} cores")
    table.add_column("sensor", style="bold")
    table.add_column("value")
    cores = sample.cpu_percent_per_core
    table.add_row("cpu per core %", " ".join(f"{p:.0f}" for p in cores))
    table.add_row("cpu busy (mean)", f"{sum(cores) / max(len(cores), 1):.0f}%")
    table.add_row("cpu frequency", _reading(sample.cpu_freq_mhz, " MHz"))
    table.add_row("cpu max frequency", _reading(sample.cpu_freq_max_mhz, " MHz"))
    table.add_row("cpu throttled", _tri(sample.cpu_throttled))
    table.add_row("load 1/5/15 min", " ".join(f"{v:.2f}" for v in sample.load_avg))
    table.add_row(
        "memory",
        f"{_gb(sample.memory_used_bytes)} used, {_gb(sample.memory_available_bytes)} available"
        f" of {_gb(sample.memory_total_bytes)}",
    )
    table.add_row(
        "swap",
        f"{_gb(sample.swap_used_bytes)} used, {sample.swap_growth_bytes_per_s / 2**20:+.1f} MB/s",
    )
    table.add_row(
        "campaign processes",
        f"{sample.campaign_cpu_percent:.0f}% cpu, {_gb(sample.campaign_rss_bytes)} rss",
    )
    for name, reading in sample.temperatures_c.items():
        table.add_row(f"temperature {name}", _reading(reading, " C"))
    table.add_row("temperature max", _reading(sample.temperature_max_c, " C"))
    table.add_row(
        "thermal pressure",
        sample.thermal_pressure or f"[yellow]unknown[/] ({sample.thermal_pressure_unavailable})",
    )
    for gpu in sample.gpus:
        reasons = (
            "unknown" if gpu.throttle_reasons is None else ", ".join(gpu.throttle_reasons) or "none"
        )
        table.add_row(
            f"gpu{gpu.index} {gpu.name}",
            f"{_reading(gpu.utilization_pct, '%')} busy, "
            f"{_reading_gb(gpu.memory_used_bytes)} / {_reading_gb(gpu.memory_total_bytes)}, "
            f"{_reading(gpu.temperature_c, ' C')}, {_reading(gpu.power_w, ' W')}, "
            f"throttle: {reasons}",
        )
    if not sample.gpus:
        table.add_row("gpu", f"[yellow]none[/] ({sample.gpu_unavailable})")
    table.add_row("accelerator memory", _reading_gb(sample.accelerator_memory_bytes))
    if power is not None:
        slow = power.on_battery or power.low_power_mode
        table.add_row("power", f"[yellow]{power.words()}[/] (slower)" if slow else power.words())
    colour = {"ok": "green", "unknown": "yellow", "warning": "yellow"}.get(decision.state, "red")
    table.add_row(
        "thermal policy (defaults)",
        f"[{colour}]{decision.state}[/]" + (f" ({reason})" if reason else ""),
    )
    return table


def _reading(reading: Reading, unit: str = "") -> str:
    if reading.value is None:
        return f"[yellow]unknown[/] ({reading.unavailable})"
    return f"{reading.value:.1f}{unit}" if unit else f"{reading.value:g}"


def _reading_gb(reading: Reading) -> str:
    if reading.value is None:
        return f"[yellow]unknown[/] ({reading.unavailable})"
    return _gb(int(reading.value))


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def _tri(value: bool | None) -> str:
    return "[yellow]unknown[/]" if value is None else ("[red]yes[/]" if value else "no")
