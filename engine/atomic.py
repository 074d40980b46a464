"""All-or-nothing file writes: a reader (or a kill -9) sees the old file or the new one,
never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:  # a read-only folder, a full disk: name the file meant
        raise _naming(error, path) from error
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):  # the folder may be what became read-only
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and _about(error, tmp):
            raise _naming(error, path) from error
        raise


def _about(error: OSError, tmp: str) -> bool:
    """The error is about the temporary file (or about no file: a write that failed)."""
    return error.filename is None or os.fspath(error.filename) == tmp


def _naming(error: OSError, path: Path) -> OSError:
    """The same error (same errno, so the same subclass) about `path`, not about the
    temporary file: the one line a user reads names the file they know. The system's
    words for the errno replace the writer's own message, which can name the temporary
    file too (pyarrow: "Failed to open local file '.x.tmp'. Detail: ...")."""
    words = os.strerror(error.errno) if error.errno else error.strerror
    return OSError(error.errno, words, str(path))
