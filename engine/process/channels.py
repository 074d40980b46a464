"""Where the engine's events go and its commands come from.

- stdout (the front-end that started the engine): protocol lines only. A closed pipe
  (EPIPE: the front-end quit) is remembered and ignored; the engine keeps running.
- stdin: commands, one JSON line each; EOF means the front-end is gone, not "stop".
- a unix socket `outputs/<campaign>/engine.sock`: a front-end started later attaches
  here and speaks the same protocol (it gets Hello and a snapshot on connect).
- the campaign's events.jsonl (written by `engine.process.outputs`).

Everything received is put on one inbox queue that the engine's main thread drains, so
all state changes happen on one thread.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from engine import protocol as p

Inbox = queue.Queue[tuple[str, Any, Any]]
MAX_SOCKET_PATH = 100


class Client:
    """One attached socket front-end."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.alive = True

    def send(self, line: bytes) -> None:
        if not self.alive:
            return
        try:
            with self.lock:
                self.conn.sendall(line)
        except OSError:
            self.close()

    def close(self) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self.conn.close()


class Channels:
    """Fan-out of events to stdout and socket clients; fan-in of commands to `inbox`."""

    def __init__(self, out: IO[str] | None, inbox: Inbox) -> None:
        self.out = out
        self.inbox = inbox
        self.clients: list[Client] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self.socket_path: Path | None = None
        self.sinks: list[Callable[[p.Event], None]] = []

    # ---------------------------------------------------------------- events

    def emit(self, event: p.Event, *, only: Client | None = None) -> None:
        line = p.encode(event) + "\n"
        if only is not None:
            only.send(line.encode())
            return
        with self._lock:
            if self.out is not None:
                try:
                    self.out.write(line)
                    self.out.flush()
                except (OSError, ValueError):  # EPIPE: the front-end went away
                    self.out = None
            clients = [c for c in self.clients if c.alive]
            self.clients = clients
        for client in clients:
            client.send(line.encode())
        for sink in self.sinks:
            sink(event)

    # ---------------------------------------------------------------- commands

    def read_stdin(self, stream: IO[bytes]) -> None:
        """Start a thread feeding stdin's command lines to the inbox."""
        threading.Thread(target=self._read, args=(stream, None), daemon=True).start()

    def _read(self, stream: Any, client: Client | None) -> None:
        try:
            for raw in stream:
                if raw.strip():
                    self.inbox.put(("line", raw, client))
        except (OSError, ValueError):
            pass
        if client is not None:
            # a socket's file object holds its descriptor open past `Client.close()`:
            # left open, a front-end gone was still counted attached (`hpotui status`)
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        self.inbox.put(("eof", None, client))

    # ---------------------------------------------------------------- socket

    def serve(self, path: Path) -> str | None:
        """Listen on a unix socket at `path`; returns why not, or None."""
        if not hasattr(socket, "AF_UNIX"):
            return "unix sockets are not available on this platform"
        if len(str(path)) > MAX_SOCKET_PATH:
            return f"socket path too long ({len(str(path))} characters): {path}"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        os.chmod(path, 0o600)
        server.listen(8)
        self._server = server
        self.socket_path = path
        threading.Thread(target=self._accept, daemon=True).start()
        return None

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            client = Client(conn)
            self.inbox.put(("attach", None, client))
            reader = conn.makefile("rb")
            threading.Thread(target=self._read, args=(reader, client), daemon=True).start()

    def add_client(self, client: Client) -> None:
        with self._lock:
            self.clients.append(client)

    def close(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()
        if self.socket_path is not None:
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
        for client in self.clients:
            client.close()
