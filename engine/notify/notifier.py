"""Which moments of a campaign become a message, what the message says, and how often.

`Notifier` is fed the engine's events (it is one of the channels' sinks, so it sees what
every front-end sees) and explicit calls for what is not an event (campaign done,
engine crashed, storage outage). A message names the campaign, the experiment, the best
value so far (lowest validation loss, from the events seen; "unknown" before any) and
the host. It keeps no storage handle: a storage outage must still be reported.

Rate limit: one message per (event kind, subject) per `repeat_s` (a flapping thermal
state or a retrying storage sends once), and at most `burst` messages per `window_s`;
campaign_done and engine_crashed, sent once at the end, always go. Suppressed messages
are counted in the next one that goes. Sending itself is `engine.notify.sender.Sender`'s
(background thread, bounded queue): nothing here blocks.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable

from engine import protocol as p
from engine.notify.config import (
    CAMPAIGN_DONE,
    CAMPAIGN_STOPPED,
    ENGINE_CRASHED,
    EXPERIMENT_FAILED,
    STORAGE_OUTAGE,
    THERMAL_CRITICAL,
    NotifySpec,
)
from engine.notify.sender import LogFn, Sender, apprise_available

ALWAYS_SENT = (CAMPAIGN_DONE, ENGINE_CRASHED, CAMPAIGN_STOPPED)
REPEAT_S = 600.0
BURST = 10
WINDOW_S = 3600.0
CLOSE_TIMEOUT_S = 10.0


class Notifier:
    """Turns campaign moments into messages for one campaign; see the module docstring."""

    def __init__(
        self,
        campaign: str,
        spec: NotifySpec,
        *,
        host: str,
        log: LogFn,
        repeat_s: float = REPEAT_S,
        burst: int = BURST,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.campaign = campaign
        self.spec = spec
        self.host = host
        self.repeat_s = repeat_s
        self.burst = burst
        self.window_s = window_s
        self._clock = clock
        self.best: dict[str, float] = {}
        self.outage: set[str] = set()  # sources waiting out a storage outage now
        self.suppressed = 0
        self._last: dict[tuple[str, str], float] = {}
        self._recent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()  # the storage hook may be called from any thread
        self.sender: Sender | None = None
        if spec.urls and spec.on:
            if apprise_available():
                self.sender = Sender(spec.urls, log)
            else:
                log(
                    "warning",
                    "notifications are off: apprise is not installed "
                    "(pip install 'hpotui[notify]')",
                )

    @property
    def active(self) -> bool:
        return self.sender is not None

    # ---------------------------------------------------------------- events in

    def on_event(self, event: p.Event) -> None:
        """A channels sink: keeps the best values, notifies failures and critical heat."""
        if isinstance(event, p.QueueSnapshot):
            for row in event.experiments:
                self._note_best(row.name, row.best_value)
        elif isinstance(event, p.TrialFinished) and event.state == "complete":
            self._note_best(event.experiment, event.value)
        elif isinstance(event, p.ExperimentFinished):
            self._note_best(event.experiment, event.best_value)
            if event.state == "failed":
                self.experiment_failed(event.experiment, event.reason)
        elif isinstance(event, p.ThermalChanged) and event.state == "critical":
            self.thermal_critical(event.reason)
        elif isinstance(event, p.StorageOutage):  # engine.storage.outage: once per outage
            if event.reachable:
                self.outage.discard(event.source)
            elif not self.outage:
                self.outage.add(event.source)
                self.storage_outage(
                    f"{event.source}: {event.error or 'no answer'}; retrying for up to "
                    f"{event.patience_s:.0f} s, then it stops (resumable)"
                )
            else:
                self.outage.add(event.source)

    def _note_best(self, experiment: str, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        self.best[experiment] = min(value, self.best.get(experiment, math.inf))

    # ---------------------------------------------------------------- the moments

    def campaign_done(self, summary: str) -> bool:
        return self._notify(CAMPAIGN_DONE, "", f"campaign finished: {summary}", summary)

    def experiment_failed(self, experiment: str, reason: str) -> bool:
        return self._notify(
            EXPERIMENT_FAILED,
            experiment,
            f"experiment {experiment} failed",
            reason or "no reason recorded",
            experiment=experiment,
        )

    def thermal_critical(self, reason: str) -> bool:
        return self._notify(
            THERMAL_CRITICAL,
            "",
            "critical temperature: running trials interrupted, new ones held",
            reason,
        )

    def storage_outage(self, detail: str) -> bool:
        return self._notify(STORAGE_OUTAGE, "", "the storage cannot be reached", detail)

    def engine_crashed(self, detail: str) -> bool:
        return self._notify(ENGINE_CRASHED, "", "the engine crashed", detail)

    def campaign_stopped(self, detail: str) -> bool:
        """The run stopped on a fault it cannot wait out (a full disk, unwritable outputs,
        the storage away past its patience): nothing is lost and the same command
        resumes, but nothing runs until someone fixes the cause."""
        return self._notify(CAMPAIGN_STOPPED, "", "campaign stopped", detail)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Let queued messages go out (bounded), e.g. before the engine exits."""
        if self.sender is not None:
            self.sender.close(timeout)

    # ---------------------------------------------------------------- sending

    def message(self, headline: str, detail: str, experiment: str | None = None) -> tuple[str, str]:
        """(title, body) of a notification."""
        lines = [f"campaign {self.campaign} on {self.host}"]
        if experiment is not None:
            lines.append(f"experiment: {experiment}")
            value = self.best.get(experiment)
            lines.append(f"best so far: {_value(value)} ({experiment})")
        if self.best:
            name = min(self.best, key=lambda n: self.best[n])
            lines.append(f"campaign best so far: {_value(self.best[name])} ({name})")
        else:
            lines.append("campaign best so far: unknown (no complete trial yet)")
        if detail:
            lines.append(detail)
        return f"hpotui {self.campaign}: {headline}", "\n".join(lines)

    def _notify(
        self, kind: str, subject: str, headline: str, detail: str, *, experiment: str | None = None
    ) -> bool:
        """Queue one message if its kind is on and the rate limit allows; True if queued."""
        if self.sender is None or kind not in self.spec.on:
            return False
        with self._lock:
            now = self._clock()
            while self._recent and now - self._recent[0] > self.window_s:
                self._recent.popleft()
            if kind not in ALWAYS_SENT:
                last = self._last.get((kind, subject))
                too_soon = last is not None and now - last < self.repeat_s
                if too_soon or len(self._recent) >= self.burst:
                    self.suppressed += 1
                    return False
            self._last[(kind, subject)] = now
            self._recent.append(now)
            title, body = self.message(headline, detail, experiment)
            if self.suppressed:
                body += f"\n({self.suppressed} earlier notification(s) held back by the rate limit)"
                self.suppressed = 0
        return self.sender.submit(title, body)


def _value(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4f}"
