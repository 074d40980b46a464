"""A real engine subprocess driven over its pipes, with polling waits (never sleeps)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine import protocol as p

FIXTURES = Path(__file__).parent / "fixtures"


def copy_fixture(workspace: Path, name: str) -> Path:
    (workspace / "configs").mkdir(exist_ok=True)
    target = workspace / "configs" / name
    shutil.copy(FIXTURES / name, target)
    return target


class EngineProcess:
    def __init__(self, config: Path, workspace: Path, *extra: str, monitor: bool = False) -> None:
        env = {**os.environ, "HPOTUI_HOME": str(workspace)}
        quiet = [] if monitor else ["--no-monitor"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "--config", str(config), *quiet, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=workspace,
            start_new_session=True,
        )
        self.events: list[p.Event] = []
        self._inbox: queue.Queue[p.Event | None] = queue.Queue()
        self._n = 0
        self.ended = False
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._inbox.put(p.decode_event(line))
        self._inbox.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace"))

    def send(self, command: p.Command) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((p.encode(command) + "\n").encode())
        self.proc.stdin.flush()

    def send_raw(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def command(self, command: p.Command, timeout: float = 30) -> p.Reply:
        self.send(command)
        reply = self.wait_for(
            lambda e: isinstance(e, p.Reply) and e.command_id == command.id, timeout
        )
        assert isinstance(reply, p.Reply)
        return reply

    def wait_for(self, predicate: Callable[[p.Event], bool], timeout: float = 60) -> p.Event:
        """The first event from now on (or already received and not yet consumed by a
        wait) matching `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            while self._n < len(self.events):
                event = self.events[self._n]
                self._n += 1
                if predicate(event):
                    return event
            if self.ended:
                raise EOFError(f"engine ended; stderr: {''.join(self.stderr[-15:])}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no such event in {timeout}s; stderr: {self.stderr[-10:]}")
            try:
                event = self._inbox.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                self.ended = True
                raise EOFError(f"engine ended; stderr: {''.join(self.stderr[-15:])}")
            self.events.append(event)

    def seen(self, predicate: Callable[[p.Event], bool]) -> list[p.Event]:
        """Every event received so far that matches."""
        return [e for e in self.events if predicate(e)]

    def snapshot(self) -> p.QueueSnapshot:
        """The latest snapshot after asking for a fresh one."""
        reply = self.command(p.RequestSnapshot(id=f"s{time.monotonic_ns()}"))
        assert reply.ok
        snaps = [e for e in self.events if isinstance(e, p.QueueSnapshot)]
        return snaps[-1]

    def drain(self, timeout: float = 60) -> int:
        """Read until the stream ends; the exit code."""
        try:
            while True:
                self.wait_for(lambda e: False, timeout)
        except EOFError:
            pass
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def worker_pids(engine_pid: int) -> list[int]:
    """Worker processes started by the engine with pid `engine_pid` (alive or orphaned)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if (
            "engine.worker.pool" in cmd
            and "--parent" in cmd
            and cmd[cmd.index("--parent") + 1] == str(engine_pid)
        ):
            found.append(proc.pid)
    return found


def read_json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
