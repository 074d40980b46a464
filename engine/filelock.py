"""Inter-process locks that the kernel releases when their holder dies.

Every lock hpotui takes on a file is an `flock`, never a lock *file* whose existence is
the lock: a process killed with SIGKILL while holding a lock file leaves it behind, and
Optuna's own journal lock (`JournalFileOpenLock`) then makes every other process wait
its 30 s grace period before stealing it, after every crash, and steals it from a holder
that is merely slow. An `flock` is dropped by the kernel the moment its holder exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

from optuna.storages.journal import JournalFileOpenLock


@contextlib.contextmanager
def held(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the `with` block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


class JournalFlock(JournalFileOpenLock):
    """Optuna's journal-file lock on `flock`: what a killed writer held is free at once.

    A thread lock comes first: `flock` is per open file, so two threads of one process
    each opening the file would otherwise both acquire it. (It subclasses Optuna's
    public lock class only to have the type `JournalFileBackend` accepts; no grace period.)
    """

    def __init__(self, journal: str | os.PathLike[str]) -> None:
        super().__init__(os.fspath(journal), grace_period=None)
        self.path = f"{os.fspath(journal)}.lock"
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    def acquire(self) -> bool:
        self._thread_lock.acquire()
        fd = -1
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            self._thread_lock.release()
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            raise RuntimeError("journal lock released without being held")
        os.close(fd)
        self._thread_lock.release()
