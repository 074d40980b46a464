"""Hardware: thermal badge, temperatures against the thresholds, memory and swap, power
(battery, Low Power Mode, keep-awake), GPUs, per-core CPU bars and the last minute of CPU
use (mean and busiest core, 0-100 %)."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from hpotui.state import CampaignState, reading
from hpotui.widgets.format import bar, nbytes, set_border, thermal_badge

CELL_WIDTH = 19  # "c00 ━━━━━━━━━━ 100%" plus a gap


HISTORY_REDRAW_S = 5.0


class Lines(Static):
    """A block of whole lines, redrawn only when its text changes (at the precision
    shown, most of the panel stays the same from one sample to the next) and without a
    relayout unless its number of lines changed: a relayout of the whole screen per
    hardware sample would cost more than everything else together."""

    _shown: Text | None = None

    def show(self, content: Text, lines: int) -> None:
        if content == self._shown:
            return
        self._shown = content
        if self.styles.height is None or self.styles.height.value != lines:
            self.styles.height = lines
            self.update(content)
        else:
            self.update(content, layout=False)


class HardwarePanel(Vertical):
    """`warning_c`/`critical_c` are the campaign's thermal thresholds."""

    DEFAULT_CSS = """
    HardwarePanel > #hw-history { height: 3; }
    """

    def __init__(self, *, warning_c: float = 85.0, critical_c: float = 95.0, id: str | None = None):
        super().__init__(id=id)
        self.warning_c = warning_c
        self.critical_c = critical_c
        self._key: object = None
        self._state: CampaignState | None = None

    @staticmethod
    def thresholds_from(config: Path) -> tuple[float, float]:
        """(warning_c, critical_c) of a campaign TOML's [monitor] table, else the
        defaults; the engine enforces them, this panel only draws them."""
        warning, critical = 85.0, 95.0
        try:
            monitor = tomllib.loads(config.read_text(encoding="utf-8")).get("monitor", {})
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            return warning, critical
        if isinstance(monitor, dict):
            warning = float(monitor.get("warning_c", warning))
            critical = float(monitor.get("critical_c", critical))
        return warning, critical

    def compose(self) -> ComposeResult:
        # kept, not queried: a query per 1 Hz sample is a measurable part of its cost
        self._summary_lines = Lines(id="hw-summary")
        self._history_lines = Lines(id="hw-history")
        self._core_lines = Lines(id="hw-cores")
        yield self._summary_lines
        yield self._history_lines
        yield self._core_lines

    _history_due = 0.0
    _history_width = -1

    def on_mount(self) -> None:
        self.border_title = "Hardware"
        self.update_from(CampaignState())

    def on_resize(self) -> None:
        self._key = None  # lines are cut to the width: redo them
        if self._state is not None:
            self.update_from(self._state)

    def update_from(self, state: CampaignState) -> None:
        self._state = state
        hw = state.hardware
        width = self.size.width
        key = (id(hw.last), state.thermal, state.thermal_reason, width)
        if key == self._key:
            return
        self._key = key
        set_border(self, subtitle=f"thermal {state.thermal}")
        sample = hw.last or {}
        summary = self._summary(state, sample, width)
        self._summary_lines.show(Text("\n").join(summary), len(summary))
        now = time.monotonic()
        if now >= self._history_due or width != self._history_width:
            # the strip chart shows a minute: redrawing it every HISTORY_REDRAW_S (not at
            # every 1 Hz sample) keeps an idle dashboard cheap
            self._history_due = now + HISTORY_REDRAW_S
            self._history_width = width
            history = _history(state, width)
            self._history_lines.show(Text("\n").join(history), len(history))
        cores, rows = self._cores(sample, width)
        self._core_lines.show(cores, rows)

    def _summary(self, state: CampaignState, sample: dict[str, Any], width: int) -> list[Text]:
        lines: list[Text] = []
        badge = Text.assemble(thermal_badge(state.thermal), " ")
        if state.thermal_reason:
            badge.append(state.thermal_reason, style="dim")
        lines.append(badge)
        if not sample:
            lines.append(Text("waiting for the first hardware sample", style="dim"))
            return _fit(lines, width)
        lines.append(self._temperatures(sample))
        cores = [float(c) for c in sample.get("cpu_percent_per_core") or []]
        cpu = Text(f"cpu  {sum(cores) / len(cores):.0f}% avg" if cores else "cpu  ?")
        load = sample.get("load_avg") or []
        if load:
            cpu.append(f" · load {float(load[0]):.1f}")
        own = sample.get("campaign_cpu_percent")
        if isinstance(own, int | float):
            cpu.append(f" · campaign {own:.0f}%")
        lines.append(cpu)
        used = float(sample.get("memory_used_bytes") or 0)
        total = float(sample.get("memory_total_bytes") or 0)
        mem = Text("mem  ")
        mem.append_text(bar(int(used), int(total) or 1, 10))
        mem.append(f" {nbytes(used)}/{nbytes(total)}")
        swap = float(sample.get("swap_used_bytes") or 0)
        growth = float(sample.get("swap_growth_bytes_per_s") or 0)
        mem.append(f"  swap {nbytes(swap)}")
        if growth > 0:
            mem.append(f" +{nbytes(growth)}/s", style="bold red")
        lines.append(mem)
        power = _power(sample)
        if power is not None:
            lines.append(power)
        lines.extend(_gpus(sample))
        return _fit(lines, width)

    def _temperatures(self, sample: dict[str, Any]) -> Text:
        text = Text("temp ")
        hottest = reading(sample.get("temperature_max_c"))
        if hottest is None:
            why = (sample.get("temperature_max_c") or {}).get("unavailable") or "no sensor"
            text.append(f"unknown ({why})", style="bold yellow")
        else:
            style = "green"
            if hottest >= self.critical_c:
                style = "bold red"
            elif hottest >= self.warning_c:
                style = "bold yellow"
            text.append(f"{hottest:.0f}°C", style=style)
        text.append(f"  warn {self.warning_c:.0f} · crit {self.critical_c:.0f}", style="dim")
        pressure = sample.get("thermal_pressure")
        if pressure:
            text.append(f"  pressure {pressure}")
        return text

    def _cores(self, sample: dict[str, Any], width: int) -> tuple[Text, int]:
        """Rows of fixed-width cells. Plain text, not a rich Table: Textual renders a
        Table once per line, which made this the costliest part of a 1 Hz redraw."""
        cores = [float(c) for c in sample.get("cpu_percent_per_core") or []]
        per_row = max(1, (width or CELL_WIDTH) // CELL_WIDTH)
        cells: list[Text] = []
        for i, pct in enumerate(cores):
            cell = Text(f"c{i:02d} ")
            cell.append_text(bar(int(pct), 100, 8))
            cell.append(f" {pct:3.0f}%")
            cells.append(cell)
        cell_width = max((c.cell_len for c in cells), default=0)
        for cell in cells:
            cell.pad_right(cell_width - cell.cell_len)
        rows = [Text(" ").join(cells[i : i + per_row]) for i in range(0, len(cells), per_row)]
        return Text("\n").join(rows), len(rows)


def _fit(lines: list[Text], width: int) -> list[Text]:
    """One row per line (the panel's height is counted in lines)."""
    for line in lines:
        line.truncate(max(1, width - 2), overflow="ellipsis")
    return lines


SPARKS = " ▁▂▃▄▅▆▇█"  # 0 % .. 100 %, one cell per sample


def sparkline(values: list[float], width: int) -> str:
    """The last `width` values (0-100 %) as block characters on a fixed 0-100 scale."""
    shown = values[-width:] if width > 0 else []
    top = len(SPARKS) - 1
    return "".join(SPARKS[max(0, min(top, round(v / 100 * top)))] for v in shown)


def _history(state: CampaignState, width: int) -> list[Text]:
    """The last minute of CPU use as two labelled sparklines (0-100 %, one cell per
    1 Hz sample, newest at the right) under a line that says so."""
    hw = state.hardware
    mean = list(hw.cpu_history)
    busiest = [max(cores) for cores in zip(*hw.core_history, strict=True)]
    room = max(1, width - 2 - 14 - 5)  # label, value
    lines = [Text(f"cpu, last {min(len(mean), room)} s (0-100 %, newest right)", style="dim")]
    for label, values, colour in (("mean", mean, "cyan"), ("busiest core", busiest, "orange1")):
        line = Text(f"{label:<13} ")
        line.append(sparkline(values, room), style=colour)
        line.append(f" {values[-1]:3.0f}%" if values else "   ?")
        lines.append(line)
    return _fit(lines, width)


def _power(sample: dict[str, Any]) -> Text | None:
    """ "power on battery · Low Power Mode on · kept awake": what slows the machine down
    in yellow, what is unreadable as "unknown"; Low Power Mode on macOS only (no other
    OS has one). None for an engine from before samples carried power."""
    power = sample.get("power")
    if not isinstance(power, dict):
        return None
    slow = "bold yellow"
    text = Text("power ")
    on_battery = power.get("on_battery")
    if on_battery is None:
        text.append("unknown", style="dim")
    else:
        text.append("on battery" if on_battery else "on AC", style=slow if on_battery else "")
    if sample.get("platform") == "macos":
        low = power.get("low_power_mode")
        text.append(" · Low Power Mode ")
        if low is None:
            text.append("unknown", style="dim")
        else:
            text.append("on" if low else "off", style=slow if low else "")
    held = power.get("keep_awake")
    if held is None:
        text.append(" · keep-awake unknown", style="dim")
    else:
        text.append(" · kept awake" if held else " · not kept awake")
    return text


def _gpus(sample: dict[str, Any]) -> list[Text]:
    gpus = sample.get("gpus") or []
    if not gpus:
        why = sample.get("gpu_unavailable")
        if why:  # the nvidia-ml-py hint only where an NVIDIA device is (as `hpotui hw`)
            from hpotui.commands.hw import gpu_reason

            why = gpu_reason(str(why))
        return [Text(f"gpu  none ({why})" if why else "gpu  none", style="dim")]
    lines = []
    for gpu in gpus:
        util = reading(gpu.get("utilization_pct"))
        used = reading(gpu.get("memory_used_bytes"))
        total = reading(gpu.get("memory_total_bytes"))
        temp = reading(gpu.get("temperature_c"))
        line = Text(f"gpu{gpu.get('index', 0)} ")
        line.append_text(bar(int(util or 0), 100, 8))
        line.append(f" {'?' if util is None else f'{util:.0f}%'}")
        line.append(f"  mem {nbytes(used)}/{nbytes(total)}")
        if temp is not None:
            line.append(f"  {temp:.0f}°C")
        lines.append(line)
    return lines
