"""Local worker processes: how many, how many threads each, and their lifecycle.

Each worker is `python -m engine.worker.pool ...` (the `main` below) running
`engine.worker.trial_loop.Worker`. It writes protocol events as JSON lines on stdout, reads control
lines (`{"control": "interrupt" | "stop_after" | "stop_now" | "hold" | "release"}`) on
stdin, and logs to stderr (a file under outputs/). It dies with the engine: Linux kills
it when the engine dies (PR_SET_PDEATHSIG), and on any platform it treats stdin EOF or a
changed parent pid as "engine gone", interrupting its trial at the next epoch boundary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from engine import protocol as p
from engine.errors import UserError

CONTROL_ACTIONS = ("interrupt", "stop_after", "stop_now", "hold", "release")
SMALL_MODEL = 5_000_000
MEDIUM_MODEL = 60_000_000


def auto_workers(
    cores: int, device: str, largest_params: int, fused: bool = False
) -> tuple[int, int]:
    """(workers, threads per worker) that keep this machine busy.

    Small models cannot use many cores each (their matrices are too small, the reference
    ran at 25% CPU), so on CPU they get one process per core with one thread each (each
    worker then fuses trials where its calibration shows a gain); bigger models get
    fewer processes with more threads.

    On an accelerator (CUDA, MPS) several small trials share it, the CPU cores split
    between them. Processes do not add up there: kernels of different processes do not
    run at the same time on one GPU (each has its own context, and the GPU time-slices
    between contexts unless NVIDIA's MPS daemon is running), so once one trial's step
    sits at its kernel floor (a CUDA graph of thousands of tiny kernels) a second
    process mostly waits its turn: 4 workers gave 1.06x one on an H200. The width has
    to come from inside one process, by fusing trials (`fuse`). With fused groups two
    workers per accelerator are enough: one steps its group while the other evaluates,
    tells Optuna and asks its next group on the CPU.
    """
    cores = max(1, cores)
    if device.startswith(("cuda", "mps")):
        n = 4 if largest_params <= SMALL_MODEL else 2 if largest_params <= MEDIUM_MODEL else 1
        if fused:
            n = min(n, 2)
        n = min(n, cores)
        return n, max(1, cores // n)
    if largest_params <= SMALL_MODEL:
        return cores, 1
    if largest_params <= MEDIUM_MODEL:
        n = max(1, cores // 4)
        return n, max(1, cores // n)
    return 1, cores


def parse_worker_count(spec: str | int) -> int | None:
    """`--workers` as a number of workers, None for "auto"; ValueError says what is wrong."""
    if str(spec) == "auto":
        return None
    try:
        n = int(spec)
    except ValueError:
        raise ValueError(f'expected a number or "auto", got {spec!r}') from None
    if n < 1:
        raise ValueError(f"needs at least 1 worker, got {n}")
    return n


def workers_arg(text: str) -> str:
    """argparse type for `--workers`: a bad value is a usage error (exit 2) at the command
    line, before any engine or study is started. Returns the text unchanged."""
    try:
        parse_worker_count(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def resolve_worker_count(
    spec: str | int | None, auto: Callable[[int], tuple[int, int]]
) -> tuple[int, int]:
    """(workers, threads per worker) from `--workers`: "auto" (or None) asks
    `auto(cores)`; a number n >= 1 gets the cores split between its workers."""
    cores = os.cpu_count() or 1
    try:
        n = None if spec is None else parse_worker_count(spec)
    except ValueError as error:
        raise UserError(str(error), where="--workers") from None
    return auto(cores) if n is None else (n, max(1, cores // n))


@dataclass
class Child:
    worker_id: str
    process: subprocess.Popen[bytes]
    stopping: bool = False
    reader: threading.Thread | None = None  # its event pipe's reader


class LocalWorkers:
    """Starts, scales, signals and reaps the engine's local worker processes.

    Must be used from one thread (the engine's main thread): on Linux a child's death
    signal is tied to the thread that started it.
    """

    def __init__(
        self,
        *,
        storage_url: str,
        campaign: str,
        on_event: Callable[[p.Event], None],
        log_path: Path,
        threads: int | None,
        device: str | None,
        lock_path: str | None,
        storage_patience_s: float | None = None,
    ) -> None:
        self.storage_url = storage_url
        self.storage_patience_s = storage_patience_s
        self.campaign = campaign
        self.on_event = on_event
        self.log_path = log_path
        self.threads = threads
        self.device = device
        self.lock_path = lock_path
        self.children: list[Child] = []
        self.target = 0
        self._serial = 0
        self.hold = False
        self._readers: list[threading.Thread] = []
        # every worker pid this engine started, exited ones too: a trial of a worker that
        # just exited is still ours while its last events wait in the pipe
        self.spawned: set[int] = set()
        # worker id -> the line a worker sent (an `ErrorRaised`) before exiting 3: disk
        # full or outputs unwritable, the reason the engine stops (not an event to show)
        self.faults: dict[str, str] = {}

    def alive(self) -> list[Child]:
        return [c for c in self.children if c.process.poll() is None]

    def pids(self) -> list[int]:
        return [c.process.pid for c in self.alive()]

    def running_count(self) -> int:
        return len([c for c in self.alive() if not c.stopping])

    def scale(self, n: int) -> None:
        """Keep `n` workers (not stopping) alive: start more, or ask extras to stop after
        their current trial."""
        self.target = max(0, n)
        active = [c for c in self.alive() if not c.stopping]
        for child in active[self.target :]:
            child.stopping = True
            self._control(child, "stop_after")
        for _ in range(self.target - len(active)):
            self._spawn(parallel=self.target > 1)

    def broadcast(self, action: str) -> None:
        if action == "hold":
            self.hold = True
        elif action == "release":
            self.hold = False
        for child in self.alive():
            if action in ("stop_after", "stop_now"):
                child.stopping = True
            self._control(child, action)

    def reap(self) -> list[tuple[str, int]]:
        """(worker id, exit code) of each child that exited since the last call; its
        last event lines (and fault) are read first."""
        done = [c for c in self.children if c.process.poll() is not None]
        self.children = [c for c in self.children if c.process.poll() is None]
        for child in done:
            if child.reader is not None:
                child.reader.join(timeout=2.0)  # it exited: its pipe is at EOF
        return [(c.worker_id, int(c.process.returncode)) for c in done]

    def kill_all(self) -> None:
        for child in self.alive():
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()

    def _spawn(self, *, parallel: bool) -> None:
        from engine.storage.backend import child_env

        self._serial += 1
        worker_id = f"w{self._serial}"
        cmd = [
            sys.executable,
            "-m",
            "engine.worker.pool",
            "--campaign",
            self.campaign,
            "--worker-id",
            worker_id,
            "--parent",
            str(os.getpid()),
            "--salt",
            str(self._serial),
        ]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        if self.device:
            cmd += ["--device", self.device]
        if parallel:
            cmd += ["--parallel"]
        if self.lock_path:
            cmd += ["--lock", self.lock_path]
        if self.hold:
            cmd += ["--hold"]
        if self.storage_patience_s is not None:
            cmd += ["--storage-patience", str(self.storage_patience_s)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                bufsize=0,
                env=child_env(self.storage_url),  # the URL off argv: `ps` shows argv
            )
        child = Child(worker_id, process)
        self.children.append(child)
        self.spawned.add(process.pid)
        reader = threading.Thread(target=self._read, args=(child,), daemon=True)
        child.reader = reader
        reader.start()
        self._readers = [r for r in self._readers if r.is_alive()] + [reader]

    def join_readers(self, timeout: float) -> None:
        """Wait until every exited worker's last event line has been read (its pipe hit
        EOF), so no event is left behind when the engine says goodbye."""
        deadline = time.monotonic() + timeout
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))

    def _read(self, child: Child) -> None:
        assert child.process.stdout is not None
        pump_events(child.process.stdout, child.worker_id, self.on_event, self.faults)

    def _control(self, child: Child, action: str) -> None:
        stdin = child.process.stdin
        if stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            stdin.write((json.dumps({"control": action}) + "\n").encode())
            stdin.flush()


# ----------------------------------------------------------------- the child process


def _die_with_parent(parent: int) -> Callable[[], bool]:
    """Ask Linux to kill us when the engine dies; return an orphan check for elsewhere."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if parent and os.getppid() != parent:  # died before prctl took effect
        os._exit(3)
    return lambda: bool(parent) and os.getppid() != parent


def _watch_control(stream: IO[bytes], flags: Any) -> None:
    for raw in stream:
        try:
            action = json.loads(raw).get("control")
        except (ValueError, AttributeError):
            continue
        if action == "interrupt":
            flags.interrupt = True
        elif action == "stop_after":
            flags.stop_after = True
        elif action == "stop_now":
            flags.exit_now = True
        elif action == "hold":
            flags.hold = True
        elif action == "release":
            flags.hold = False
    flags.exit_now = True  # EOF: the engine is gone


def pump_events(
    stream: IO[bytes],
    worker_id: str,
    sink: Callable[[p.Event], None],
    faults: dict[str, str],
) -> None:
    """Decode a worker process's event lines into `sink` until EOF; a bad line becomes a
    warning, never a crash. An `ErrorRaised` is the line of the environment fault the
    worker exits 3 with (`run_worker_process`): kept in `faults[worker_id]` for the stop
    line of the engine or node, not passed on (it is said once, there)."""
    for line in stream:
        if not line.strip():
            continue
        try:
            event = p.decode_event(line)
        except p.ProtocolError as exc:
            event = p.LogLine(level="warning", message=f"{worker_id}: {exc}")
        if isinstance(event, p.ErrorRaised):
            faults[worker_id] = event.message
        else:
            sink(event)


def child_process_io(flags: Any) -> Callable[[p.Event], None]:
    """Set up a worker child process: SIGTERM sets `flags.exit_now`, control lines on stdin
    are watched, and the returned `emit` writes protocol lines to the original stdout
    while anything else printed goes to stderr (the log), never into the event stream."""

    def on_term(signum: int, frame: Any) -> None:
        flags.exit_now = True

    signal.signal(signal.SIGTERM, on_term)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    lock = threading.Lock()

    def emit(event: p.Event) -> None:
        with lock:
            try:
                out.write(p.encode(event) + "\n")
                out.flush()
            except OSError:
                flags.exit_now = True

    threading.Thread(target=_watch_control, args=(sys.stdin.buffer, flags), daemon=True).start()
    return emit


def run_worker_process(
    url: str,
    args: argparse.Namespace,
    emit: Callable[[p.Event], None],
    flags: Any,
    **options: Any,
) -> int:
    """A worker process's life, the engine's local workers and a node's alike: open the
    storage (an outage waited out), take the campaign's heartbeat settings, run the loop
    of `engine.worker.trial_loop.Worker` (`args`: the flags both entry points take; `options`:
    what differs, e.g. `parallel`, `lock_path`, `poll_s`). Past the storage patience: one
    line on stderr, exit 75 (its trial stays RUNNING and is recovered as interrupted). A
    full disk or an unwritable path: the fault's line as an `error` event (the line the
    engine or the node stops with), in the log too, and exit 3."""
    from engine.env_faults import EXIT_ENVIRONMENT, describe_fault
    from engine.storage.outage import EXIT_STORAGE_UNREACHABLE, StorageUnreachable, open_guarded
    from engine.storage.queue import CampaignQueue
    from engine.worker.fit import memory_limit_from_env
    from engine.worker.heartbeat import use_campaign_heartbeat
    from engine.worker.trial_loop import Worker

    try:
        storage = open_guarded(url, args.storage_patience, emit, source=args.worker_id)
        use_campaign_heartbeat(storage, CampaignQueue(storage, args.campaign))
        worker = Worker(
            storage,
            args.campaign,
            worker_id=args.worker_id,
            emit=emit,
            flags=flags,
            threads=args.threads,
            device=args.device,
            salt=args.salt,
            memory_limit=args.memory_limit or memory_limit_from_env(),
            **options,
        )
        return int(worker.run())
    except StorageUnreachable as error:
        print(f"{args.worker_id}: {error}", file=sys.stderr)
        return EXIT_STORAGE_UNREACHABLE
    except OSError as error:
        fault = describe_fault(error)
        if fault is None:
            raise
        emit(p.ErrorRaised(message=fault))
        with contextlib.suppress(OSError):  # the log may be on the full disk
            print(f"worker {args.worker_id}: {fault}", file=sys.stderr)
        return EXIT_ENVIRONMENT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.worker.pool")
    parser.add_argument("--storage", help="default: $HPOTUI_STORAGE (what the engine sets)")
    parser.add_argument("--campaign", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--parent", type=int, default=0)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--device")
    parser.add_argument("--memory-limit", type=int, help="bytes a trial may use (test hook)")
    parser.add_argument("--salt", type=int, default=0)
    parser.add_argument("--parallel", action="store_true")
    parser.add_argument("--lock")
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--storage-patience", type=float, default=300.0)
    args = parser.parse_args(argv)

    from engine.storage.backend import STORAGE_ENV, requested_storage
    from engine.worker.trial_loop import Flags

    url = requested_storage(args.storage)
    if not url:
        print(f"engine.worker.pool: ${STORAGE_ENV} is not set", file=sys.stderr)
        return 2

    orphaned = _die_with_parent(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    flags = Flags(orphaned=orphaned, hold=args.hold)

    emit = child_process_io(flags)
    from engine.worker.heartbeat import prepare_worker_process

    prepare_worker_process(args.threads)  # before a trial: its heartbeat must not starve
    code = run_worker_process(url, args, emit, flags, parallel=args.parallel, lock_path=args.lock)
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(code)  # not sys.exit: the stdin reader thread would block interpreter shutdown


if __name__ == "__main__":
    sys.exit(main())
