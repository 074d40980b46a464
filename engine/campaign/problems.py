"""Collecting every problem of a config file, each with its file, line and key.

The config loader never stops at the first mistake: it records each one here as a
`UserError` whose text is `file:line: key: what was expected (did you mean X?)`, and
raises them all together as `UserErrors` at the end.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.campaign.toml_lines import KeyLines, KeyPath
from engine.errors import UserError, UserErrors


def dotted(path: KeyPath) -> str:
    """("experiments", 2, "budget") -> "experiments[2].budget"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The valid name closest to `word`, if any is close enough to be a likely typo."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def describe(value: Any) -> str:
    """A value as the user wrote it, for "got ..." messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return repr(value)


class Problems:
    """The problems found in one config file, in the order they were found."""

    def __init__(self, path: Path, lines: KeyLines) -> None:
        self.path = path
        self.key_lines = lines
        self.errors: list[UserError] = []

    def where(self, path: KeyPath) -> str:
        return f"{self.path}:{self.key_lines.line(path)}"

    def add(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        text = f"{dotted(path)}: {message}" if path else message
        self.errors.append(UserError(text, where=self.where(path), hint=hint))

    def unknown_key(self, path: KeyPath, valid: Iterable[str], what: str = "key") -> None:
        valid = sorted(valid)
        guess = nearest(str(path[-1]), valid)
        hint = f"did you mean {guess}?" if guess else f"valid: {', '.join(valid)}"
        self.add(path, f"unknown {what}", hint)

    def raise_if_any(self) -> None:
        if self.errors:
            raise UserErrors(self.errors)
