"""One worker process of `hpotui worker` (a worker node joining a shared campaign).

    HPOTUI_STORAGE=URL python -m engine.fleet.node_worker --campaign NAME --worker-id w1 --parent PID

The same loop as the engine's local workers (`engine.worker.trial_loop.Worker`: pick -> ask ->
train -> tell, with a heartbeat), with what a machine of its own needs: the campaign's
heartbeat settings (`engine.worker.heartbeat`), this machine's name (`$HPOTUI_HOST`) and a
sampler salt unique to the machine. The storage URL comes from the environment, never
the command line, so its password does not show in `ps`. Protocol events go to stdout,
control lines (`engine.worker.pool` format) come on stdin, logs go to stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
import zlib

from engine.storage.backend import STORAGE_ENV

IDLE_POLL_S = 1.0  # each look at the queue reads every trial of the campaign


def node_salt(host: str, pid: int, index: int) -> int:
    """A sampler salt that differs between machines and between a node's workers, so
    two workers asking at the same moment do not draw the same parameters."""
    # Optuna seeds must stay under 2**32 after engine.worker.trial_loop scales the salt (x 7919).
    return (zlib.crc32(f"{host}:{pid}".encode()) % 20_011) * 16 + index % 16


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.fleet.node_worker")
    parser.add_argument("--campaign", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--parent", type=int, default=0)
    parser.add_argument("--salt", type=int, default=0)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--device")
    parser.add_argument("--storage-patience", type=float, default=300.0)
    parser.add_argument("--memory-limit", type=int, help="bytes a trial may use (test hook)")
    args = parser.parse_args(argv)
    url = os.environ.get(STORAGE_ENV, "")
    if not url:
        print(f"engine.fleet.node_worker: ${STORAGE_ENV} is not set", file=sys.stderr)
        return 2

    from engine.worker import trial_loop as worker_module
    from engine.worker.heartbeat import prepare_worker_process
    from engine.worker.pool import _die_with_parent, child_process_io, run_worker_process

    orphaned = _die_with_parent(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the node decides what Ctrl-C means
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    flags = worker_module.Flags(orphaned=orphaned)

    emit = child_process_io(flags)
    prepare_worker_process(args.threads)  # before a trial: its heartbeat must not starve
    try:  # a full disk: exit 3 with its line, and the node stops with it
        code = run_worker_process(url, args, emit, flags, parallel=True, poll_s=IDLE_POLL_S)
    except Exception:
        traceback.print_exc()
        code = 1
    sys.stderr.flush()
    os._exit(code)  # the stdin reader thread would block interpreter shutdown


if __name__ == "__main__":
    sys.exit(main())
