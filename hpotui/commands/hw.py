"""`hpotui hw`: what the hardware monitor sees, for users and for checks.

    hpotui hw                   one sample as a table
    hpotui hw --json            one sample as one JSON line (HardwareSample.to_dict())
    hpotui hw --watch           a sample every --interval seconds until Ctrl-C
    hpotui hw --watch --json    JSON lines, one per sample
    hpotui hw --cache           the table, and every run choice measured on this machine

The table also shows what the thermal policy (default thresholds) would decide, and how
many run choices were measured on this machine (the autotune cache, machine-wide: every
user's campaigns); `--cache` lists them (precision, attention kernel, threads per
architecture class, with the step times that chose them: engine.train.autotune; fused
group sizes). On a terminal, `--watch` redraws a compact table that fits it. Reasons
are printed literally (never read as rich markup: `hpotui[nvidia]` stays whole); the
nvidia-ml-py install hint only on a machine with an NVIDIA device; campaign process
figures only for a campaign engine running on this machine (this command's own process
is no campaign).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from rich.markup import escape

from engine.campaign.model import MonitorSpec
from engine.errors import UserError
from engine.monitor.factory import make_probe
from engine.monitor.nvidia import INSTALL_HINT
from engine.monitor.policy import PolicyDecision, ThermalPolicy
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
    parser.add_argument(
        "--cache",
        action="store_true",
        help="list every run choice measured on this machine (autotune cache); "
        "without it one line counts them",
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
    policy = ThermalPolicy(MonitorSpec())
    reason = ""
    campaigns = CampaignProcesses()
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
                    print(json.dumps(sample.to_dict(), allow_nan=False), flush=True)
                elif live is not None:
                    live.update(render(sample, decision, reason, campaigns.usage(), compact=True))
                else:
                    _print(render(sample, decision, reason, campaigns.usage(), cache=args.cache))
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

    live = _Refreshing(auto_refresh=False, vertical_overflow="crop")  # never taller
    live.start()
    return live


def _print(renderable: Any) -> None:
    from rich.console import Console

    Console().print(renderable)


class CampaignProcesses:
    """The campaign engines running on this machine (outputs/*/engine.pid, alive) and
    their process trees: what "campaign processes" means in `hpotui hw`."""

    def __init__(self) -> None:
        import psutil

        self._procs: dict[int, psutil.Process] = {}
        self.usage()  # primes the CPU counters

    def engines(self) -> list[tuple[str, int]]:
        from engine import paths

        found = []
        for pid_file in sorted(paths.outputs_dir().glob("*/engine.pid")):
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            if _alive(pid):
                found.append((pid_file.parent.name, pid))
        return found

    def usage(self) -> tuple[list[str], float, int] | None:
        """(campaign names, cpu %, rss bytes) of the running engines and their
        workers; None when no campaign runs here."""
        import psutil

        engines = self.engines()
        if not engines:
            return None
        cpu, rss = 0.0, 0
        for _, pid in engines:
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in tree:
                proc = self._procs.setdefault(proc.pid, proc)
                try:
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                except psutil.Error:
                    continue
        return [name for name, _ in engines], cpu, rss


def _alive(pid: int) -> bool:
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def gpu_reason(reason: str) -> str:
    """Why there is no GPU reading, for this machine: the nvidia-ml-py install hint only
    where an NVIDIA device exists (else the hint sends users after a package they do
    not need)."""
    if INSTALL_HINT in reason and not nvidia_device_present():
        return reason.replace(INSTALL_HINT, "no NVIDIA GPU on this machine")
    return reason


def nvidia_device_present() -> bool:
    """An NVIDIA device node or driver, seen without NVML."""
    from pathlib import Path

    return Path("/proc/driver/nvidia/gpus").is_dir() or Path("/dev/nvidia0").exists()


def render(
    sample: HardwareSample,
    decision: PolicyDecision,
    reason: str,
    campaigns: tuple[list[str], float, int] | None = None,
    *,
    cache: bool = False,
    compact: bool = False,
) -> Any:
    """A rich table of one sample: every sensor, or why it is unavailable; the run
    choices counted in one row, or listed (`cache`). `compact` (--watch on a terminal):
    no borders or header, and a reading's "unknown" without its reason, so the table
    fits a terminal (each redraw replaces the last)."""
    from rich import box
    from rich.table import Table

    title = f"hpotui hw · {sample.platform} · {len(sample.cpu_percent_per_core)} cores"
    if compact:
        table = Table(title=title + " · Ctrl+C stops", box=None, show_header=False)
    else:
        table = Table(title=title, box=box.HEAVY_HEAD)
    table.add_column("sensor", style="bold", no_wrap=compact)
    table.add_column("value")
    _reading, _reading_gb = (_short_reading, _short_reading_gb) if compact else (_full, _full_gb)
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

    def why(text: str) -> str:  # a reason in parentheses, left out when compact
        return "" if compact or not text else f" ({escape(text)})"

    if campaigns is None:
        table.add_row("campaign processes", "none" + why("no campaign runs on this machine"))
    else:
        names, cpu, rss = campaigns
        table.add_row(
            "campaign processes",
            escape(f"{', '.join(names)}: {cpu:.0f}% cpu, {_gb(rss)} rss"),
        )
    for name, reading in sample.temperatures_c.items():
        table.add_row(escape(f"temperature {name}"), _reading(reading, " C"))
    table.add_row("temperature max", _reading(sample.temperature_max_c, " C"))
    table.add_row(
        "thermal pressure",
        escape(sample.thermal_pressure or "")
        or f"[yellow]unknown[/]{why(sample.thermal_pressure_unavailable or '')}",
    )
    for gpu in sample.gpus:
        reasons = (
            "unknown" if gpu.throttle_reasons is None else ", ".join(gpu.throttle_reasons) or "none"
        )
        table.add_row(
            escape(f"gpu{gpu.index} {gpu.name}"),
            f"{_reading(gpu.utilization_pct, '%')} busy, "
            f"{_reading_gb(gpu.memory_used_bytes)} / {_reading_gb(gpu.memory_total_bytes)}, "
            f"{_reading(gpu.temperature_c, ' C')}, {_reading(gpu.power_w, ' W')}, "
            f"throttle: {reasons}",
        )
    if not sample.gpus:
        table.add_row("gpu", f"[yellow]none[/]{why(gpu_reason(sample.gpu_unavailable or ''))}")
    accelerator = sample.accelerator_memory_bytes
    if accelerator.unavailable:
        accelerator = Reading.missing(gpu_reason(accelerator.unavailable))
    table.add_row("accelerator memory", _reading_gb(accelerator))
    power = sample.power  # keep_awake is the engine's: unknown (left out) here
    table.add_row("power", f"[yellow]{power.words()}[/] (slower)" if power.slows else power.words())
    colour = {"ok": "green", "unknown": "yellow", "warning": "yellow"}.get(decision.state, "red")
    table.add_row(
        "thermal policy (defaults)",
        f"[{colour}]{decision.state}[/]" + why(reason),
    )
    rows = run_choice_rows()
    if not cache:
        measured = len(rows) - 1
        hint = "; hpotui hw --cache lists them" if measured else ""
        rows = [(rows[0][0], rows[0][1].split("; ")[0] + hint)]
    for name, value in rows:
        table.add_row(escape(name), escape(value))
    return table


def run_choice_rows() -> list[tuple[str, str]]:
    """The autotune cache as table rows: its file, then one row per architecture class
    measured on this machine (CPU model and torch version as now)."""
    from engine.train.run_choice_cache import cache_path, cached_choices, machine

    path = cache_path()
    here = machine() + " | "
    choices = cached_choices(path)
    mine = {
        k[len(here) :].replace(" | ", " · "): c for k, c in choices.items() if k.startswith(here)
    }
    others = len(choices) - len(mine)
    summary = f"{len(mine)} measured here" if mine else "none yet (timed on first training)"
    rows = [("run choices", f"{summary}{f', {others} other machines' if others else ''}; {path}")]
    for key, choice in mine.items():
        threads = "" if choice.threads is None else f" · {choice.threads} thread(s)"
        times = "; ".join(
            f"{stage}: " + ", ".join(f"{label} {ms:,.1f} ms" for label, ms in timed.items())
            for stage, timed in choice.figures.items()
        )
        rows.append(
            (
                f"  {key}",
                f"{choice.precision} · {choice.attention}{threads} "
                f"(on {choice.measured_on}: {times}; took {choice.cost_s:.1f}s)",
            )
        )
    return rows + fuse_choice_rows(here)


def fuse_choice_rows(here: str) -> list[tuple[str, str]]:
    """The fused-group sizes `fuse = "auto"` measured on this machine, one row a class."""
    from engine.train.run_choice_cache import cached_fuse_choices

    rows = []
    for key, choice in cached_fuse_choices().items():
        if not key.startswith(here):
            continue
        steps = ", ".join(f"K={k} {s * 1e3:,.1f} ms" for k, s in dict(choice["step_s"]).items())
        rows.append(
            (
                f"  fuse · {key[len(here) :].replace(' | ', ' · ')}",
                f"K={choice['k']} (memory allows {choice['memory_bound']}; per step: "
                f"{steps or 'not timed'}; took {float(choice.get('cost_s', 0)):.1f}s)",
            )
        )
    return rows


def _full(reading: Reading, unit: str = "") -> str:
    if reading.value is None:
        return f"[yellow]unknown[/] ({escape(reading.unavailable or '')})"
    return f"{reading.value:.1f}{unit}" if unit else f"{reading.value:g}"


def _full_gb(reading: Reading) -> str:
    if reading.value is None:
        return f"[yellow]unknown[/] ({escape(reading.unavailable or '')})"
    return _gb(int(reading.value))


def _short_reading(reading: Reading, unit: str = "") -> str:
    return "[yellow]unknown[/]" if reading.value is None else _full(reading, unit)


def _short_reading_gb(reading: Reading) -> str:
    return "[yellow]unknown[/]" if reading.value is None else _full_gb(reading)


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def _tri(value: bool | None) -> str:
    return "[yellow]unknown[/]" if value is None else ("[red]yes[/]" if value else "no")
