"""`hpotui status [--json]`: every campaign engine running on this machine.

pueue's `status` is the model: one line per engine (pid, campaign, progress, attached
front-ends), so an engine left running after its front-end died is never invisible.
An engine is found by its `outputs/<campaign>/engine.pid` and counted only if that pid
is alive and runs `-m engine` (a pid file left by a killed engine is ignored). Progress
comes from the engine itself over its socket (the `QueueSnapshot` it sends on attach,
which it builds from the storage); front-ends are the process that spawned it (if it
still lives) and the other clients of its socket.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine import paths
from engine import protocol as p

SOCKET_NAME = "engine.sock"
READ_TIMEOUT_S = 5.0


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "status",
        help="the campaign engines running on this machine",
        description="List every campaign engine running on this machine: pid, campaign, "
        "progress and attached front-ends.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(func=run)


@dataclass
class EngineStatus:
    """What `hpotui status` shows of one running engine."""

    pid: int
    campaign: str
    folder: str
    trials_done: int | None = None  # complete + pruned + failed, over all experiments
    trials_total: int | None = None
    running: int | None = None
    experiments: dict[str, str] = field(default_factory=dict)  # name -> state
    spawned_by: int | None = None  # the front-end that started it, if still alive
    socket_clients: int = 0
    storage: str = ""  # as the engine says it: password masked
    unreachable: str = ""  # why progress is unknown

    @property
    def front_ends(self) -> int:
        return self.socket_clients + (1 if self.spawned_by else 0)


def running_engines(outputs: Path) -> list[EngineStatus]:
    """The engines of campaigns under `outputs` whose pid is alive and an engine."""
    found = []
    for pid_file in sorted(outputs.glob(f"*/{'engine.pid'}")):
        pid = _engine_pid(pid_file)
        if pid is None:
            continue
        status = EngineStatus(pid=pid, campaign=pid_file.parent.name, folder=str(pid_file.parent))
        _front_ends(status, pid_file.parent / SOCKET_NAME)
        _progress(status, pid_file.parent / SOCKET_NAME)
        found.append(status)
    return found


def _engine_pid(pid_file: Path) -> int | None:
    import psutil

    try:
        pid = int(pid_file.read_text().strip())
        cmdline = psutil.Process(pid).cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if "engine" in cmdline and "-m" in cmdline else None


def _front_ends(status: EngineStatus, sock: Path) -> None:
    """The live spawner, and the engine's connected socket clients (before we attach)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        engine = psutil.Process(status.pid)
        parent = engine.parent()
        if parent is not None and parent.pid != 1 and "hpotui" in " ".join(parent.cmdline()):
            status.spawned_by = parent.pid
        conns = engine.net_connections(kind="unix")
        # the listening socket and each accepted connection carry the socket's path
        on_socket = [c for c in conns if c.laddr == str(sock)]
        status.socket_clients = max(0, len(on_socket) - 1)


def _progress(status: EngineStatus, sock: Path) -> None:
    """Ask the engine (attach, read Hello and QueueSnapshot, detach)."""
    snapshot: p.QueueSnapshot | None = None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(READ_TIMEOUT_S)
            conn.connect(str(sock))
            conn.sendall((p.encode(p.RequestSnapshot(id="status")) + "\n").encode())
            with conn.makefile("rb") as lines:
                for line in lines:
                    event = p.decode_event(line.decode())
                    if isinstance(event, p.Hello):
                        status.storage = event.storage
                    if isinstance(event, p.QueueSnapshot):
                        snapshot = event
                        break
    except (OSError, p.ProtocolError, ValueError) as error:
        status.unreachable = f"no answer on {sock.name} ({error})"
        return
    if snapshot is None:
        status.unreachable = f"no queue snapshot on {sock.name}"
        return
    rows = snapshot.experiments
    status.trials_done = sum(r.n_complete + r.n_pruned + r.n_failed for r in rows)
    status.trials_total = sum(r.n_trials for r in rows)
    status.running = sum(r.n_running for r in rows)
    status.experiments = {r.name: r.state for r in rows}


def _line(status: EngineStatus) -> str:
    if status.trials_total is None:
        progress = f"progress unknown: {status.unreachable}"
    else:
        done = sum(state == "done" for state in status.experiments.values())
        progress = (
            f"{status.trials_done}/{status.trials_total} trials, {status.running} running, "
            f"{done}/{len(status.experiments)} experiments done"
        )
    if status.front_ends:
        parts = [f"spawned by pid {status.spawned_by}"] if status.spawned_by else []
        if status.socket_clients:
            parts.append(f"{status.socket_clients} attached on the socket")
        front = "front-ends: " + ", ".join(parts)
    else:
        front = "no front-end (headless: `hpotui CONFIG` attaches)"
    return f"{status.pid:>7}  {status.campaign:<20} {progress}; {front}"


def run(args: argparse.Namespace) -> int:
    engines = running_engines(paths.outputs_dir())
    if args.json:
        rows = [{**asdict(s), "front_ends": s.front_ends} for s in engines]
        print(json.dumps({"engines": rows}, indent=2))
        return 0
    if not engines:
        print(f"no campaign engine running (outputs: {paths.outputs_dir()})")
        return 0
    print(f"{'pid':>7}  {'campaign':<20} progress; front-ends")
    for status in engines:
        print(_line(status))
    return 0
