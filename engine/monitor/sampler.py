"""`MonitorThread`: sample every interval on a background thread, judge each sample
with the policy, hand both to a callback (the engine turns them into `HardwareSampled`
and `ThermalChanged` events and pauses or stops workers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from engine.monitor.policy import PolicyDecision, ThermalPolicy
from engine.monitor.probe import Probe
from engine.monitor.sample import HardwareSample

SampleCallback = Callable[[HardwareSample, PolicyDecision], None]
ErrorCallback = Callable[[BaseException], None]


class MonitorThread:
    """Calls `probe.sample()` every `interval_s` and `on_sample(sample, decision)`.

    Ticks are scheduled on the monotonic clock, so a slow sample does not make the
    interval drift; a tick that is missed entirely is skipped, not made up. An exception
    from the probe or the callback goes to `on_error` and the thread keeps sampling (a
    dead monitor would silently disable thermal protection). The callback runs on this
    thread: keep it short (put the event on a queue). `stop()` joins; the probe stays
    open (its owner closes it).
    """

    def __init__(
        self,
        probe: Probe,
        policy: ThermalPolicy,
        on_sample: SampleCallback,
        *,
        interval_s: float | None = None,
        trial_running: Callable[[], bool] = lambda: False,
        on_error: ErrorCallback | None = None,
        name: str = "hpotui-monitor",
    ) -> None:
        self.interval_s = float(interval_s if interval_s is not None else policy.spec.interval_s)
        if self.interval_s <= 0:
            raise ValueError(f"monitor interval must be > 0 s, got {self.interval_s:g}")
        self._probe = probe
        self._policy = policy
        self._on_sample = on_sample
        self._trial_running = trial_running
        self._on_error = on_error or _print_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.samples_taken = 0

    def start(self) -> MonitorThread:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def tick(self) -> None:
        """One sample + decision + callback (what the thread does each interval)."""
        sample = self._probe.sample()
        decision = self._policy.update(sample, self._trial_running())
        self.samples_taken += 1
        self._on_sample(sample, decision)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # reported, and sampling goes on
                self._on_error(exc)
            next_at += self.interval_s
            now = time.monotonic()
            if next_at < now:  # fell behind: skip the missed ticks
                next_at = now + self.interval_s
            self._stop.wait(next_at - now)

    def __enter__(self) -> MonitorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _print_error(exc: BaseException) -> None:
    import sys

    print(f"hpotui monitor: sample failed: {type(exc).__name__}: {exc}", file=sys.stderr)
