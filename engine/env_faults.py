"""Faults of the machine, not of the campaign: a full disk, outputs made unwritable.

They stop the run cleanly (`EXIT_ENVIRONMENT`, exit code 3) with one line naming the
path and what to do, instead of a traceback; the journal never keeps half a record
(`engine/storage/journal_check.py` truncates a failed append), so the same command resumes once
the cause is fixed, and the trials that were running are recorded interrupted then
(by recovery at start-up) if they could not be at the stop.
"""

from __future__ import annotations

import errno

EXIT_ENVIRONMENT = 3

_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def describe_fault(error: BaseException) -> str | None:
    """One line for a disk-full or unwritable-path error, or None for anything else."""
    if not isinstance(error, OSError) or error.errno not in _FULL + _UNWRITABLE:
        return None
    path = error.filename or "a file of the campaign"
    if error.errno in _FULL:
        what, fix = "the disk is full", "free some space"
    else:
        what, fix = "it is not writable", "make it writable"
    return (
        f"cannot write {path}: {what} ({error.strerror}); the run stopped with every "
        f"completed trial stored: {fix}, then run the same command again to resume"
    )
