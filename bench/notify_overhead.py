"""What notifications cost the engine's loop: the Notifier is a sink of every event.

    python bench/notify_overhead.py [--events 200000] [--calls 2000]

1. Per event: `Notifier.on_event` on a realistic stream (hardware samples, epochs, trial
   ends, queue snapshots) against a no-op sink in the same process: the ratio is what a
   campaign with [notify] pays per event on the engine thread.
2. Per message while the notification service hangs (a loopback HTTP server that never
   answers until released): the time of a call that queues a message, and how many
   were dropped by the bounded queue; sending must never wait on the service.
Needs apprise (`pip install 'hpotui[notify]'`).
"""

from __future__ import annotations

import argparse
import http.server
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import protocol as p
from engine.notify.config import NotifySpec
from engine.notify.notifier import Notifier


def _stream(n: int) -> list[p.Event]:
    rows = [p.ExperimentStatus(f"e{i}", i, "10K", 1, "t", "running", 50) for i in range(20)]
    events: list[p.Event] = []
    for i in range(n):
        kind = i % 100
        if kind == 0:
            events.append(p.QueueSnapshot(experiments=rows, workers=4))
        elif kind < 5:
            events.append(p.TrialFinished("e1", i, "complete", 0.6 - i * 1e-7, 1.0, "w1", "h"))
        elif kind < 40:
            events.append(p.EpochEnded("e1", i, 1, 0.7, 0.69, 1.0))
        else:
            events.append(p.HardwareSampled(sample={"cpu": 50.0}))
    return events


def _time(sink: Any, events: list[p.Event], repeats: int = 5) -> float:
    """Best-of seconds per event."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for event in events:
            sink(event)
        best = min(best, (time.perf_counter() - start) / len(events))
    return best


class _Hung(http.server.BaseHTTPRequestHandler):
    release = threading.Event()

    def do_POST(self) -> None:
        self.release.wait(60)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hung)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"json://127.0.0.1:{server.server_address[1]}/hook"
    logs: list[str] = []
    notifier = Notifier(
        "bench",
        NotifySpec(urls=(url,)),
        host="h",
        log=lambda _, t: logs.append(t),
        repeat_s=0,
        burst=10**9,
    )
    events = _stream(args.events)

    def noop(event: p.Event) -> None:
        pass

    base = _time(noop, events)
    sink = _time(notifier.on_event, events)
    print(
        f"per event: no-op sink {base * 1e9:.0f} ns, Notifier.on_event {sink * 1e9:.0f} ns "
        f"({sink / base:.1f}x the no-op; {sink * 1e6:.2f} us per event)"
    )

    calls = []
    for i in range(args.calls):
        start = time.perf_counter()
        notifier.experiment_failed(f"e{i}", "bench")
        calls.append(time.perf_counter() - start)
    calls.sort()
    sender = notifier.sender
    assert sender is not None
    print(
        f"queue a message while the service hangs: median {statistics.median(calls) * 1e6:.1f} us, "
        f"p99 {calls[int(len(calls) * 0.99)] * 1e6:.1f} us, max {calls[-1] * 1e3:.2f} ms; "
        f"{sender.dropped} of {args.calls} dropped by the bounded queue"
    )
    _Hung.release.set()
    server.shutdown()


if __name__ == "__main__":
    main()
