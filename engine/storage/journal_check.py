"""The journal file's integrity: what a reader may trust, and the one repair allowed.

An Optuna journal is a file of JSON records, one a line. A record is complete when its
line ends with `\\n`, is valid UTF-8 and parses to an object with an `op_code`. Rules:

- A *torn tail* (everything after the last complete record is unparsable: a record cut
  by a power cut or kill -9 mid-write, a cut inside a multi-byte character, zeros or
  garbage appended) is cut back to the last complete record, after the whole file is
  copied to `optuna.journal.damaged-<timestamp>`, with one warning line. Left in place,
  the next append would glue a good record onto the broken line and make every later
  record unreadable.
- A *damaged middle* (an unparsable line with complete records after it) is never
  repaired: the run stops with `JournalDamaged` (exit 2) naming the file, the byte
  offset and what to do.
- Writes never leave a partial record: `CheckedJournalBackend.append_logs` cuts a torn
  tail before writing (under the journal's flock, so no other writer is mid-record) and
  truncates back to where it started when a write fails (disk full, I/O error).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend

from engine.errors import UserError
from engine.filelock import JournalFlock


class JournalDamaged(UserError):
    """A record in the middle of a journal cannot be read; the run must not go on."""


@dataclass(frozen=True)
class JournalScan:
    """What a read of the whole journal found.

    `good_end` is the byte offset just after the last complete record (the size the file
    is cut back to when its tail is torn); `tail_bytes` how many bytes follow it;
    `damaged_at`/`damage` the first bad record that has good records after it.
    """

    path: Path
    size: int
    records: int
    good_end: int
    damaged_at: int | None = None
    damage: str = ""
    records_after_damage: int = 0

    @property
    def torn_tail(self) -> bool:
        return self.damaged_at is None and self.good_end < self.size

    @property
    def tail_bytes(self) -> int:
        return self.size - self.good_end

    def damaged_error(self) -> JournalDamaged:
        return JournalDamaged(
            f"record at byte {self.damaged_at} is damaged ({self.damage}) and "
            f"{self.records_after_damage} complete record(s) follow it, so the campaign's "
            "history cannot be trusted",
            where=f"storage {self.path}",
            hint=f"restore the file from a backup, or keep what precedes the damage: copy "
            f"it, then `truncate -s {self.damaged_at} {self.path}`",
        )

    def tail_warning(self, backup: Path | None) -> str:
        kept = f"; the whole file was copied to {backup}" if backup else ""
        return (
            f"storage {self.path}: the last record was incomplete ({self.tail_bytes} bytes "
            f"at byte {self.good_end}: a write cut short); cut back to the "
            f"{self.records} complete record(s){kept}"
        )


def _problem(line: bytes) -> str | None:
    """Why `line` (with its newline, if any) is not a complete record, or None."""
    if not line.endswith(b"\n"):
        return "incomplete: no end of line"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    try:
        record = json.loads(text)
    except ValueError:
        return "not a JSON record"
    if not isinstance(record, dict) or not isinstance(record.get("op_code"), int):
        return "not an Optuna journal record"
    return None


def scan(path: Path) -> JournalScan:
    """Read the whole journal at `path` (which must exist) and say what is wrong."""
    records = 0
    offset = 0
    good_end = 0
    first_bad: tuple[int, str] | None = None
    after_bad = 0
    with path.open("rb") as file:
        for line in file:
            problem = _problem(line)
            if problem is None:
                records += 1
                if first_bad is not None:
                    after_bad += 1
                else:
                    good_end = offset + len(line)
            elif first_bad is None:
                first_bad = (offset, problem)
            offset += len(line)
    if first_bad is not None and after_bad:
        return JournalScan(
            path,
            offset,
            records,
            good_end,
            damaged_at=first_bad[0],
            damage=first_bad[1],
            records_after_damage=after_bad,
        )
    return JournalScan(path, offset, records, good_end)


def cut_torn_tail(path: Path, found: JournalScan) -> Path:
    """Copy the journal aside, then cut it to `found.good_end`. The caller holds the
    journal lock. Returns the copy's path."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    shutil.copy2(path, backup)
    with path.open("r+b") as file:
        file.truncate(found.good_end)
        file.flush()
        os.fsync(file.fileno())
    return backup


def check_and_repair(path: Path, warn: Callable[[str], None]) -> None:
    """On open: cut a torn tail (with a backup and one warning), refuse a damaged middle.

    Holds the journal's flock, so no writer appends while the file is read and cut.
    Raises `JournalDamaged`.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    lock = JournalFlock(path)
    lock.acquire()
    try:
        found = scan(path)
        if found.damaged_at is not None:
            raise found.damaged_error()
        if found.torn_tail:
            warn(found.tail_warning(cut_torn_tail(path, found)))
    finally:
        lock.release()


class CheckedJournalBackend(JournalFileBackend):
    """Optuna's journal file backend whose appends never leave a partial record."""

    def __init__(self, path: Path, warn: Callable[[str], None]) -> None:
        self._warn = warn
        super().__init__(str(path), lock_obj=JournalFlock(path))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        payload = data.encode("utf-8")
        self._lock.acquire()
        try:
            fd = os.open(self._file_path, os.O_RDWR | os.O_APPEND)
            try:
                start = os.fstat(fd).st_size
                if start and os.pread(fd, 1, start - 1) != b"\n":
                    # A writer died mid-record (we hold the lock: none is writing now).
                    path = Path(self._file_path)
                    found = scan(path)
                    if found.damaged_at is not None:
                        raise found.damaged_error()
                    self._warn(found.tail_warning(cut_torn_tail(path, found)))
                    start = found.good_end
                try:
                    view = memoryview(payload)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except OSError as error:
                    os.ftruncate(fd, start)  # no half record for a reader to find
                    raise OSError(error.errno, error.strerror, self._file_path) from error
                except BaseException:
                    os.ftruncate(fd, start)
                    raise
            finally:
                os.close(fd)
        finally:
            self._lock.release()
