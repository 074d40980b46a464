"""The engine log, filterable by minimum level (f while focused), scrollable (up/down,
page up/down, home/end) while focused, following the tail otherwise. Lines are cut to
the panel's width; w (while focused) wraps them, so a long refusal reason reads whole.

Deliberately not a RichLog: a RichLog grows its virtual size on every write, which
relayouts the whole screen; this view draws the visible window of lines into a fixed area,
so new lines cost a repaint of this panel only.
"""

from __future__ import annotations

import time
from collections import deque

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from hpotui.state import LOG_LEVELS, CampaignState, LogEntry
from hpotui.widgets.format import set_border

LEVEL_STYLES = {"debug": "dim", "info": "", "warning": "yellow", "error": "bold red"}
KEPT = 1000


class LogView(Widget, can_focus=True):
    BINDINGS = [
        Binding("f", "cycle_level", "Log level"),
        Binding("w", "toggle_wrap", "Wrap lines"),
        Binding("escape", "app.focus('queue')", "Back"),
        Binding("up,k", "scroll_lines(1)", "Older", show=False),
        Binding("down,j", "scroll_lines(-1)", "Newer", show=False),
        Binding("pageup", "scroll_page(1)", "Page up", show=False),
        Binding("pagedown", "scroll_page(-1)", "Page down", show=False),
        Binding("home", "scroll_lines(1000000)", "Oldest", show=False),
        Binding("end", "scroll_lines(-1000000)", "Follow", show=False),
    ]

    class LevelChanged(Message):
        def __init__(self, level: str) -> None:
            super().__init__()
            self.level = level

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.min_level = "info"
        self.wrap = False  # w: long lines wrap instead of being cut
        self.back = 0  # lines scrolled back from the tail; 0 follows new lines
        self.entries: deque[LogEntry] = deque(maxlen=KEPT)  # shown, after the filter
        self._written = 0
        self._state: CampaignState | None = None

    def on_mount(self) -> None:
        self._titles()

    def on_focus(self) -> None:
        self.screen.add_class("show-log")  # short terminals show the log only when asked

    def on_blur(self) -> None:
        self.screen.remove_class("show-log")

    def update_from(self, state: CampaignState) -> None:
        self._state = state
        new = state.log_since(self._written, self.min_level)
        if state.log:
            self._written = state.log[-1].seq
        if new:
            self.entries.extend(new)
            if self.back:  # keep the lines the reader is looking at in place
                self.back = min(self.back + len(new), self._max_offset())
            self.refresh()

    def visible_entries(self) -> list[LogEntry]:
        height = max(1, self.size.height)
        end = len(self.entries) - self.back
        return list(self.entries)[max(0, end - height) : end]

    def render(self) -> Text:
        width = max(1, self.size.width)
        if self.wrap:
            return self._wrapped(width)
        lines = [_line(e) for e in self.visible_entries()]
        for line in lines:  # one entry, one row: wrapping would push the newest off
            line.truncate(width, overflow="ellipsis")
        return Text("\n").join(lines) if lines else Text("no log lines yet", style="dim")

    def _wrapped(self, width: int) -> Text:
        """The newest entries (up to the scroll position), wrapped, filling the panel
        from the bottom: the newest line stays in view."""
        height = max(1, self.size.height)
        rows: list[Text] = []
        end = len(self.entries) - self.back
        for entry in reversed(list(self.entries)[:end]):
            rows[:0] = list(_line(entry).wrap(self.app.console, width))
            if len(rows) >= height:
                break
        rows = rows[-height:]
        return Text("\n").join(rows) if rows else Text("no log lines yet", style="dim")

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap
        self._titles()
        self.refresh()

    def action_scroll_lines(self, lines: int) -> None:
        self.back = max(0, min(self.back + lines, self._max_offset()))
        self._titles()
        self.refresh()

    def action_scroll_page(self, pages: int) -> None:
        self.action_scroll_lines(pages * max(1, self.size.height - 1))

    def action_cycle_level(self) -> None:
        self.set_level(LOG_LEVELS[(LOG_LEVELS.index(self.min_level) + 1) % len(LOG_LEVELS)])

    def set_level(self, level: str) -> None:
        self.min_level = level
        self.entries.clear()
        self.back = 0
        self._written = 0
        self._titles()
        if self._state is not None:
            self.update_from(self._state)
        self.refresh()
        self.post_message(self.LevelChanged(level))

    def _max_offset(self) -> int:
        return max(0, len(self.entries) - max(1, self.size.height))

    def _titles(self) -> None:
        scrolled = f"{self.back} lines back · end: follow · " if self.back else ""
        wrap = "w: cut lines" if self.wrap else "w: wrap"
        set_border(self, f"Log · level ≥ {self.min_level}", f"{scrolled}f: level · {wrap}")


def _line(entry: LogEntry) -> Text:
    stamp = time.strftime("%H:%M:%S", time.localtime(entry.ts))
    text = Text(f"{stamp} ", style="dim")
    text.append(f"{entry.level[:4].upper():<4} ", style=LEVEL_STYLES.get(entry.level, ""))
    text.append(f"{entry.source}: ", style="dim")
    text.append(entry.message, style=LEVEL_STYLES.get(entry.level, ""))
    return text
