"""A long-running command read line by line on a background thread (`macmon pipe`,
`sudo -n powermetrics -i ...`), so the 1 Hz sample only looks up the latest record
instead of paying for a subprocess each second."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# Records are grouped from lines by a splitter: (buffered lines) -> (record lines, rest).
Splitter = Callable[[list[str]], tuple[list[str], list[str]]]


def one_line_per_record(lines: list[str]) -> tuple[list[str], list[str]]:
    """Each non-blank line is a record (JSON lines)."""
    return ([lines[-1]], []) if lines and lines[-1].strip() else ([], [])


class StreamReader(Generic[T]):
    """Runs `argv`, parses each record with `parse`, keeps the latest parsed value.

    `latest()` returns (value, None) or (None, reason): not started yet, the command
    failed or exited (with its last stderr line), the last record could not be parsed,
    or the last record is older than `max_age_s` (a hung tool is not a fresh reading).
    A command that exited or could not start is tried again `restart_after_s` later
    (a campaign runs for days; one macmon crash must not blind it for the rest).
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        parse: Callable[[str], T],
        *,
        splitter: Splitter = one_line_per_record,
        max_age_s: float = 10.0,
        restart_after_s: float | None = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._parse = parse
        self._splitter = splitter
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._value_at = 0.0
        self._error: str | None = None
        self._problem: str | None = None
        self._stderr: deque[str] = deque(maxlen=5)
        self._argv = argv
        self._restart_after_s = restart_after_s
        self._exited_at: float | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._closed = False
        self._spawn()

    def _spawn(self) -> None:
        try:
            proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            with self._lock:
                self._error = f"{self.name} could not start: {exc.strerror or exc}"
                self._exited_at = self._clock()
            return
        with self._lock:
            self._proc, self._error, self._exited_at = proc, None, None
            self._value, self._problem = None, None
        for target in (self._read_stdout, self._read_stderr):
            threading.Thread(target=target, args=(proc,), name=self.name, daemon=True).start()

    def latest(self) -> tuple[T | None, str | None]:
        exited_at = self._exited_at
        if (
            not self._closed
            and exited_at is not None
            and self._restart_after_s is not None
            and self._clock() - exited_at >= self._restart_after_s
        ):
            self._spawn()  # a tool that crashed gets another chance, once a minute
        with self._lock:
            value, at, error, problem = self._value, self._value_at, self._error, self._problem
        if error is not None:
            return None, error
        if problem is not None:
            return None, problem
        if value is None:
            return None, f"waiting for the first {self.name} sample"
        age = self._clock() - at
        if age > self._max_age_s:
            return None, f"no {self.name} sample for {age:.0f} s"
        return value, None

    def wait_first(self, timeout_s: float) -> bool:
        """Block until a first record (or an error) arrives; for tests and one-shot use."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value, reason = self.latest()
            if value is not None or (reason and not reason.startswith("waiting")):
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._closed = True
        with self._lock:
            proc, self._proc = self._proc, None
            self._error, self._exited_at = f"{self.name} stopped", None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=2)

    def _read_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        buffered: list[str] = []
        for line in proc.stdout:
            buffered.append(line.rstrip("\n"))
            record, buffered = self._splitter(buffered)
            if record:
                self._take("\n".join(record))
        code = proc.wait()
        time.sleep(0.05)  # let the stderr reader catch the last words
        with self._lock:
            if self._error is None and self._proc is proc:  # not closed meanwhile
                tail = f": {self._stderr[-1]}" if self._stderr else ""
                self._error = f"{self.name} exited with code {code}{tail}"
                self._exited_at = self._clock()

    def _take(self, text: str) -> None:
        try:
            value: T | None = self._parse(text)
            problem = None
        except ValueError as exc:  # a bad record is reported until the next good one
            value, problem = None, f"{self.name} printed unparseable output: {exc}"
        with self._lock:
            self._value, self._value_at, self._problem = value, self._clock(), problem

    def _read_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.strip():
                self._stderr.append(line.strip())
