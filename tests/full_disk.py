"""A full disk met inside worker processes, for end-to-end tests: a `sitecustomize.py`
on PYTHONPATH makes the second trial of every matching worker process raise ENOSPC for
`path`, as a write on a full disk does. Only processes whose command line names
`process` (e.g. "engine.worker.pool", "engine.fleet.node_worker") are touched."""

from __future__ import annotations

import os
from pathlib import Path

_SITE = """
import errno, sys
if {process!r} in sys.orig_argv:
    import engine.worker.trial_loop as trial_loop
    train, calls = trial_loop.Worker._train, []
    def _train(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", {path!r})
        return train(self, *args, **kwargs)
    trial_loop.Worker._train = _train
"""


def full_disk_env(folder: Path, process: str, path: str) -> dict[str, str]:
    """os.environ plus a PYTHONPATH whose sitecustomize (written into `folder`) fills
    the disk for the workers of `process` at their second trial."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_SITE.format(process=process, path=path))
    python_path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(folder)]))
    return {**os.environ, "PYTHONPATH": python_path}
