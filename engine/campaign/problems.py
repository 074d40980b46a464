"""Collecting every problem of a config file, each with its file, line and key.

The config loader never stops at the first mistake: it records each one here as a
`UserError` whose text is `file:line: key: what was expected (did you mean X?)`, and
raises them all together as `UserErrors` at the end. Pre-flight's problems, found per
experiment, are gathered per key by `KeyProblems`: the key is what the user changes,
once, however many experiments it reaches.
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
        """Record a problem; the same one again (a [defaults] key checked once for each
        experiment it reaches) is said once."""
        text = f"{dotted(path)}: {message}" if path else message
        error = UserError(text, where=self.where(path), hint=hint)
        if str(error) not in {str(e) for e in self.errors}:
            self.errors.append(error)

    def unknown_key(self, path: KeyPath, valid: Iterable[str], what: str = "key") -> None:
        valid = sorted(valid)
        guess = nearest(str(path[-1]), valid)
        hint = f"did you mean {guess}?" if guess else f"valid: {', '.join(valid)}"
        self.add(path, f"unknown {what}", hint)

    def raise_if_any(self) -> None:
        if self.errors:
            raise UserErrors(self.errors)


class KeyProblems:
    """Pre-flight's problems of a campaign's experiments, said once per config key.

    The same text for several experiments is one line naming them ("[all 4
    experiments]"). Texts that differ only in an experiment's own figures (a validation
    split of 716 windows at h1, 715 at h5) are one line too: the first experiment's
    text, "[2M_h1; likewise 2M_h5]". A second, different problem of one experiment at
    the same key keeps a line of its own.
    """

    def __init__(self, n_experiments: int) -> None:
        self.total = n_experiments
        self._found: dict[str, list[tuple[str, str]]] = {}  # where -> (experiment, text)

    def add(self, where: str, experiment: str, text: str) -> None:
        """`where` is "file:line: key"."""
        self._found.setdefault(where, []).append((experiment, text))

    def errors(self) -> list[UserError]:
        lines = []
        for where, found in self._found.items():
            first: dict[str, str] = {}  # experiment -> its first problem at this key
            more: dict[str, list[str]] = {}  # a second problem of one at the same key
            for name, text in found:
                if name not in first:
                    first[name] = text
                elif text != first[name]:
                    more.setdefault(text, []).append(name)
            names = list(first)
            if len(set(first.values())) == 1:
                line = f"{first[names[0]]} [{self._which(names)}]"
            else:
                others = names[1:]
                alike = f"the other {len(others)}" if len(names) == self.total > 2 else None
                line = f"{first[names[0]]} [{names[0]}; likewise {alike or ', '.join(others)}]"
            lines.append(UserError(line, where=where))
            lines += [UserError(f"{t} [{self._which(n)}]", where=where) for t, n in more.items()]
        return lines

    def _which(self, names: list[str]) -> str:
        return f"all {self.total} experiments" if len(names) == self.total > 1 else ", ".join(names)
