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


def _locked_fd(path: str | os.PathLike[str]) -> int:
    """A descriptor of `path` (created if missing) holding its exclusive lock; closing
    the descriptor releases the lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def held(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the `with` block."""
    fd = _locked_fd(path)
    try:
        yield
    finally:
        os.close(fd)


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
        try:
            self._fd = _locked_fd(self.path)
        except BaseException:
            self._thread_lock.release()
            raise
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            raise RuntimeError("journal lock released without being held")
        os.close(fd)
        self._thread_lock.release()
