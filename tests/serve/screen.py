"""Enough of a terminal to read what the browser was sent: textual-serve forwards the
app's ANSI output to the page, and the page's xterm.js draws it on a canvas (no DOM
text). The test records the same bytes in the page and replays them here: cursor moves
and printable characters, every other escape sequence ignored."""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"\x1b\[(?P<params>[0-?]*)[ -/]*(?P<final>[@-~])"  # CSI
    r"|\x1b[\]P^_X].*?(?:\x07|\x1b\\)"  # OSC, DCS, ...: strings ignored
    r"|\x1b[()][0-9A-Za-z]|\x1b."  # charset and two-byte escapes
    r"|(?P<text>[^\x1b\x00-\x1f]+)"
    r"|(?P<control>[\x00-\x1f])",
    re.DOTALL,
)
TOP_LEFT, TOP_RIGHT, BOTTOM_RIGHT = "╭┌┏╔", "╮┐┓╗", "╯┘┛╝"


class Screen:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows = [[" "] * width for _ in range(height)]
        self.x = self.y = 0

    def feed(self, data: str) -> None:
        for match in _TOKEN.finditer(data):
            if match["text"] is not None:
                for char in match["text"]:
                    if 0 <= self.y < self.height and 0 <= self.x < self.width:
                        self.rows[self.y][self.x] = char
                    self.x += 1
            elif match["control"] == "\r":
                self.x = 0
            elif match["control"] == "\n":
                self.y += 1
            elif match["final"] in ("H", "f"):
                parts = (match["params"] or "").split(";")
                self.y = int(parts[0] or 1) - 1
                self.x = int(parts[1] or 1) - 1 if len(parts) > 1 else 0
            elif match["final"] == "J" and match["params"] == "2":
                self.rows = [[" "] * self.width for _ in range(self.height)]

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.rows]

    def text(self) -> str:
        return "\n".join(self.lines())

    def panel(self, title: str) -> str:
        """The text inside the bordered panel whose top border holds `title` ("" when
        no such panel is on screen)."""
        lines = self.lines()
        for top, line in enumerate(lines):
            at = line.find(title)
            if at < 0:
                continue
            left = max((line.rfind(c, 0, at) for c in TOP_LEFT), default=-1)
            rights = [i for i in (line.find(c, at) for c in TOP_RIGHT) if i >= 0]
            if left < 0 or not rights:
                continue
            right = min(rights)
            inside = []
            for row in lines[top + 1 :]:
                if len(row) > right and row[right] in BOTTOM_RIGHT:
                    break
                inside.append(row[left + 1 : right])
            return "\n".join(inside)
        return ""
