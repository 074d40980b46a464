"""Every machine of a campaign as rows of text: `hpotui hosts` prints them, the Hosts
screen (hpotui/screens/hosts.py) shows them. Input: the host views of
`engine.fleet.host_records.host_views` (also what a `HostsChanged` event carries)."""

from __future__ import annotations

import time
from typing import Any

COLUMNS = (
    "host",
    "role",
    "status",
    "device",
    "memory",
    "workers",
    "running",
    "thermal",
    "seen",
    "version",
    "last command",
)


def _bytes(n: Any) -> str:
    if not n:
        return "?"
    for unit, size in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("k", 2**10)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n}B"


def _ago(seconds: Any) -> str:
    s = round(float(seconds or 0))
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


def command_text(command: Any) -> str:
    if not isinstance(command, dict):
        return "-"
    action = str(command.get("action", "?"))
    if action == "workers":
        action = f"workers {command.get('workers')}"
    at = time.strftime("%H:%M:%S", time.localtime(float(command.get("at", 0))))
    return f"{action} by {command.get('by', '?')} at {at}"


def host_cells(view: dict[str, Any]) -> list[str]:
    """One machine's row, in the order of COLUMNS."""
    running = list(view.get("running") or [])
    return [
        str(view.get("host", "?")),
        str(view.get("role", "?")),
        str(view.get("status", view.get("state", "?"))),
        str(view.get("device") or "?"),
        _bytes(view.get("memory_bytes")),
        str(view.get("workers", 0)),
        ", ".join(running[:3]) + (f" +{len(running) - 3}" if len(running) > 3 else "")
        if running
        else "-",
        str(view.get("thermal", "unknown")),
        _ago(view.get("seen_s_ago")),
        str(view.get("version") or "?"),
        command_text(view.get("command")),
    ]


def text_table(views: list[dict[str, Any]]) -> str:
    """A plain text table (no colours): what `hpotui hosts` prints."""
    rows = [list(COLUMNS)] + [host_cells(v) for v in views]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
