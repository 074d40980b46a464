"""Errors a user can fix, as opposed to bugs.

Rules:
- Raise `UserError` for anything caused by the user's input (a file, a config field, a
  missing dataset). Its text is one line that names the place (file, line, field or row)
  and what to do. The CLI prints it without a traceback and exits with `exit_code`.
- Raise `UserErrors` when several problems are found at once (pre-flight, validation):
  each is printed on its own line.
- Nothing is written before such an error is raised: write to a temporary file and
  rename it only after validation has passed.
"""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input, reported in one line, exit code 2 by default."""

    def __init__(
        self, message: str, *, where: str | None = None, hint: str | None = None, exit_code: int = 2
    ) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        self.exit_code = exit_code
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class UserErrors(UserError):
    """Several user errors found together; `lines()` gives one line per problem."""

    def __init__(self, errors: Iterable[UserError], *, exit_code: int = 2) -> None:
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} problem(s) found", exit_code=exit_code)

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]

    def __str__(self) -> str:
        return "\n".join(str(e) for e in getattr(self, "errors", [])) or self.message
