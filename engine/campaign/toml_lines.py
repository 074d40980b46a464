"""Line numbers of the keys of a TOML document, for error messages.

`tomllib` returns values without positions, so this module scans the text once and
records, for every key path it sees, the line where the key is written:

    [defaults.params]                 ("defaults", "params")               -> line of header
    learning_rate = { log_uniform = [1e-4, 1e-3] }
                                      ("defaults", "params", "learning_rate") -> this line
    [[experiments]]                   ("experiments", 0)                    -> line of header
    budget = "2M"                     ("experiments", 0, "budget")          -> this line

Keys inside inline tables and multi-line arrays are not recorded; `KeyLines.line`
falls back to the nearest recorded ancestor (the line holding the inline table).
Only used after `tomllib` accepted the text, so the scanner may assume valid TOML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KeyPath = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass
class KeyLines:
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int:
        """Line of `path`, else of its nearest recorded ancestor, else 1."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(tuple(path[:end]))
            if found is not None:
                return found
        return 1


def locate_keys(text: str) -> KeyLines:
    """Scan TOML `text` and return the line (1-based) of every table and key."""
    result = KeyLines()
    array_counts: dict[tuple[str, ...], int] = {}
    current: KeyPath = ()
    scanner = _Scanner(text)
    while not scanner.done():
        scanner.skip_blank()
        if scanner.done():
            break
        lineno = scanner.lineno
        if scanner.peek() == "[":
            is_array = scanner.startswith("[[")
            scanner.advance(2 if is_array else 1)
            keys = scanner.read_key()
            scanner.advance(2 if is_array else 1)
            current = _resolve(keys, array_counts)
            if is_array:
                index = array_counts.get(tuple(keys), -1) + 1
                array_counts[tuple(keys)] = index
                # a new element resets the counters of arrays nested inside it
                for nested in [k for k in array_counts if k[: len(keys)] == tuple(keys)]:
                    if nested != tuple(keys):
                        del array_counts[nested]
                result.lines.setdefault(current, lineno)
                current = (*current, index)
            result.lines[current] = lineno
        else:
            keys = scanner.read_key()
            result.lines[(*current, *keys)] = lineno
            scanner.skip_value()
        scanner.skip_to_next_line()
    return result


def _resolve(keys: list[str], array_counts: dict[tuple[str, ...], int]) -> KeyPath:
    """Insert the current index after each prefix that is an array of tables."""
    path: list[str | int] = []
    for i, key in enumerate(keys):
        path.append(key)
        prefix = tuple(keys[: i + 1])
        if prefix in array_counts and i + 1 < len(keys):
            path.append(array_counts[prefix])
    return tuple(path)


class _Scanner:
    """A cursor over TOML text that knows strings, comments and brackets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lineno = 1

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def startswith(self, prefix: str) -> bool:
        return self.text.startswith(prefix, self.pos)

    def advance(self, n: int = 1) -> None:
        chunk = self.text[self.pos : self.pos + n]
        self.lineno += chunk.count("\n")
        self.pos += n

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t"):
            self.advance()

    def skip_blank(self) -> None:
        """Skip whitespace, newlines and comments."""
        while not self.done():
            char = self.peek()
            if char in " \t\r\n":
                self.advance()
            elif char == "#":
                self.skip_to_next_line()
            else:
                return

    def skip_to_next_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.advance((len(self.text) if end < 0 else end + 1) - self.pos)

    def read_key(self) -> list[str]:
        """A dotted key (bare or quoted parts); stops before `=` or `]`."""
        keys: list[str] = []
        while True:
            self.skip_spaces()
            char = self.peek()
            if char in ('"', "'"):
                keys.append(self.read_string())
            else:
                match = _BARE.match(self.text, self.pos)
                if not match:
                    return keys
                keys.append(match.group(0))
                self.advance(len(match.group(0)))
            self.skip_spaces()
            if self.peek() != ".":
                return keys
            self.advance()

    def read_string(self) -> str:
        """A basic or literal string, single- or multi-line; returns its raw content."""
        quote = self.peek()
        triple = self.startswith(quote * 3)
        delimiter = quote * 3 if triple else quote
        self.advance(len(delimiter))
        start = self.pos
        while not self.done():
            if quote == '"' and self.peek() == "\\":
                self.advance(2)
                continue
            if self.startswith(delimiter):
                content = self.text[start : self.pos]
                self.advance(len(delimiter))
                while triple and self.peek() == quote:  # up to two quotes may end the content
                    self.advance()
                return content
            self.advance()
        return self.text[start:]

    def skip_value(self) -> None:
        """From `= value` to the end of the value (which may span lines)."""
        self.skip_spaces()
        if self.peek() == "=":
            self.advance()
        depth = 0
        while not self.done():
            char = self.peek()
            if char in ('"', "'"):
                self.read_string()
                continue
            if char == "#":
                self.skip_to_next_line()
                if depth == 0:
                    self.pos -= 1  # leave the newline for skip_to_next_line
                    self.lineno -= 1
                    return
                continue
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
            elif char == "\n" and depth == 0:
                return
            self.advance()
