"""Delivering messages through apprise, off the caller's thread.

`Sender` owns one daemon thread and a bounded queue: `submit` never blocks (a full
queue drops the message and counts it), so training and the engine's loop never wait
on a slow or dead notification service. Each URL is sent to separately, so a failure
names the URL that failed; the first failure of a URL is logged (masked, scrubbed),
later ones only counted. `close(timeout)` lets the last messages (campaign done, engine
crashed) go out before the process exits, for at most `timeout` seconds.

`send_each` is the synchronous form, for `hpotui notify --test`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from engine.notify.config import label, scrub
from engine.protocol import LogLevel

QUEUE_SIZE = 32
LogFn = Callable[[LogLevel, str], None]  # (level, message)


@dataclass(frozen=True)
class Outcome:
    """What happened to one message at one URL: `error` is None when it was sent."""

    index: int
    url: str
    error: str | None

    @property
    def label(self) -> str:
        return label(self.index, self.url)


def apprise_available() -> bool:
    try:
        import apprise  # noqa: F401
    except ImportError:
        return False
    return True


def send_each(urls: tuple[str, ...], title: str, body: str) -> list[Outcome]:
    """Send one message to every URL, one at a time; an Outcome per URL (never raises
    for a URL's problem: an unknown scheme or a refused connection is its error)."""
    import apprise

    outcomes = []
    for index, url in enumerate(urls):
        target = apprise.Apprise()
        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            try:
                ok = target.add(url) and bool(target.notify(title=title, body=body))
            except Exception as exc:  # a plugin's own bug must not stop the others
                ok = False
                captured.write(f"{type(exc).__name__}: {exc}\n")
            text = captured.getvalue()
        if ok:
            outcomes.append(Outcome(index, url, None))
            continue
        if not target:
            why = "apprise does not understand this URL (see apprise's URL list)"
        else:
            lines = [line.split(" - ")[-1] for line in text.splitlines() if line.strip()]
            why = lines[-1] if lines else "the service refused the message"
        outcomes.append(Outcome(index, url, scrub(why, urls)))
    return outcomes


class Sender:
    """A background sender for one set of URLs; see the module docstring."""

    def __init__(self, urls: tuple[str, ...], log: LogFn, *, queue_size: int = QUEUE_SIZE) -> None:
        self.urls = urls
        self._log = log
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failed_urls: set[int] = set()
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def submit(self, title: str, body: str) -> bool:
        """Queue a message; False (and counted) when the queue is full."""
        self._start()
        try:
            self._queue.put_nowait((title, body))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def close(self, timeout: float) -> None:
        """Deliver what is queued, for at most `timeout` seconds, then stop."""
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        thread.join(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                outcomes = send_each(self.urls, *item)
            except Exception as exc:  # never let the thread die: later messages still go
                self._log("warning", f"notify: sending failed: {scrub(str(exc), self.urls)}")
                continue
            for outcome in outcomes:
                if outcome.error is None:
                    self.sent += 1
                    continue
                self.failed += 1
                if outcome.index not in self._failed_urls:
                    self._failed_urls.add(outcome.index)
                    self._log(
                        "warning",
                        f"notify: could not send to {outcome.label}: {outcome.error} "
                        "(later failures of this URL are not logged)",
                    )
