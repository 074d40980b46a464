"""Small text formatters shared by the panels (numbers, durations, state colours), and
how a panel sets its border titles."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

STATE_STYLES = {
    "queued": "dim",
    "running": "bold green",
    "paused": "bold yellow",
    "done": "cyan",
    "failed": "bold red",
    "skipped": "magenta",
    "complete": "cyan",
    "pruned": "yellow",
    "interrupted": "magenta",
}
THERMAL_STYLES = {
    "ok": "bold black on green",
    "warning": "bold black on yellow",
    "paused": "bold black on dark_orange",
    "critical": "bold white on red",
    "unknown": "bold white on grey37",
}


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def thermal_badge(level: str) -> Text:
    return Text(f" {level.upper()} ", style=THERMAL_STYLES.get(level, THERMAL_STYLES["unknown"]))


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 trial`, `3 trials`, `0 trials`: never "1 experiments" or "trial(s)"."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def value(number: float | None, digits: int = 4) -> str:
    return "-" if number is None else f"{number:.{digits}f}"


def count(n: int | float | None) -> str:
    """1234567 -> 1.23M."""
    if n is None:
        return "-"
    n = float(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def nbytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("k", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}B"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def bar(done: int, total: int, width: int = 10) -> Text:
    """A progress bar of block characters (a gauge, not a chart)."""
    frac = 0.0 if total <= 0 else min(1.0, max(0.0, done / total))
    filled = round(frac * width)
    return Text.assemble(("━" * filled, "green"), ("━" * (width - filled), "grey30"))


def set_border(widget: Widget, title: str | None = None, subtitle: str | None = None) -> None:
    """Set `widget`'s border title and subtitle, each only if it changed: every set
    repaints the whole widget, which at 1 Hz cost more than the panel's new content."""
    if title is not None and title != widget.border_title:
        widget.border_title = title
    if subtitle is not None and subtitle != widget.border_subtitle:
        widget.border_subtitle = subtitle
