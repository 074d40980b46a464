"""A loopback HTTP server that records what apprise's `json://` plugin posts to it."""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any


class JsonSink:
    """Collects the JSON bodies POSTed to it; `hold` makes every request wait until
    `release()` (a slow notification service)."""

    def __init__(self, *, hold: bool = False) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._released = threading.Event()
        if not hold:
            self._released.set()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink._released.wait(30)
                sink.received.append(json.loads(body))
                sink.paths.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def release(self) -> None:
        self._released.set()

    def wait_for(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= n, f"got {len(self.received)} of {n}: {self.received}"
        return self.received

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()


def refused_url() -> str:
    """A json:// URL with a password at a loopback port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"json://alice:s3cretpass@127.0.0.1:{port}/private-token-path"
