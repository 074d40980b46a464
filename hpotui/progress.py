"""Campaign-wide progress and ETA, shared by the dashboard's header and `--batch`:
`[37/150 trials · 2h10m left]`.

The ETA is work left over the measured pace, both from measured trials. Work left: each
experiment's trials to go times its own mean trial duration; one not started yet uses the
measured seconds per trial per budget parameter of the experiments that have run, times
its budget (a 20M budget is taken to cost ten times a 2M one). Pace: how many trials were
in progress at once, on average, over the last hour of activity (`concurrency`), which is
the measured trials per hour expressed in trial-time: it knows fused groups (several
trials per worker), more workers than cores (each trial slower) and other machines, which
the worker count does not, and a worker added a moment ago changes nothing until it has
measurably sped the campaign up. With no trial measured the ETA is unknown, never a guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.protocol import ExperimentStatus

TERMINAL = ("done", "failed", "skipped")
WINDOW_S = 3600.0  # the pace is measured over the last hour of activity
_UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9}


@dataclass(frozen=True)
class Progress:
    done: int  # trials counted (complete, pruned, failed) in experiments not skipped
    total: int  # trials the campaign will have counted when it ends
    eta_s: float | None  # None: unknown

    def label(self) -> str:
        """`37/150 trials · 2h10m left` (ETA `unknown` before any trial was measured)."""
        noun = "trial" if self.total == 1 else "trials"
        if self.done >= self.total:
            left = "done"
        elif self.eta_s is None:
            left = "ETA unknown"
        else:
            left = f"{short_duration(self.eta_s)} left"
        return f"{self.done}/{self.total} {noun} · {left}"

    def short_label(self) -> str:
        """`37/150 · 2h10m` for narrow screens (`?` when unknown)."""
        if self.done >= self.total:
            return f"{self.done}/{self.total} · done"
        left = "?" if self.eta_s is None else short_duration(self.eta_s)
        return f"{self.done}/{self.total} · {left}"


def budget_params(budget: str) -> float | None:
    """'20M' -> 2e7; None when the label is not a number with a K/M/B suffix."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMBG]?)\s*", budget.upper())
    if match is None:
        return None
    return float(match.group(1)) * _UNITS[match.group(2)]


def counted(x: ExperimentStatus) -> int:
    return x.n_complete + x.n_pruned + x.n_failed


def concurrency(
    intervals: Iterable[tuple[float, float | None]], window_s: float = WINDOW_S
) -> float | None:
    """The mean number of trials in progress at once over the last `window_s` seconds
    up to the latest trial end (`intervals`: each trial's (start, end), end None while it
    runs): trials per hour as measured, in trial-time. None before a trial ended."""
    spans = [(s, e) for s, e in intervals if math.isfinite(s)]
    ends = [e for _, e in spans if e is not None and math.isfinite(e)]
    if not ends:
        return None
    end = max(ends)
    start = max(end - window_s, min(s for s, _ in spans))
    if end <= start:
        return None
    busy = sum(max(0.0, min(end, end if e is None else e) - max(start, s)) for s, e in spans)
    return busy / (end - start) if busy > 0 else None


def campaign_progress(
    queue: Sequence[ExperimentStatus],
    durations: Mapping[str, Iterable[float]],
    pace: float | None,
    counts: Mapping[str, int] | None = None,
) -> Progress:
    """Progress of the campaign whose queue is `queue`; `durations[experiment]` are the
    measured durations (s) of its finished trials; `pace` is the measured `concurrency`
    (None: not measured yet); `counts[experiment]`, where given, replaces the queue's
    count of counted trials (a renderer that has seen a trial end before the queue event
    that counts it)."""
    done = total = 0
    per_trial: dict[str, float] = {}
    for x in queue:
        measured = [d for d in durations.get(x.name, ()) if d is not None and math.isfinite(d)]
        if measured:
            per_trial[x.name] = sum(measured) / len(measured)
    per_param = [
        per_trial[x.name] / params
        for x in queue
        if x.name in per_trial and (params := budget_params(x.budget))
    ]
    rate = sum(per_param) / len(per_param) if per_param else None
    work = 0.0
    unknown = False
    for x in queue:
        if x.state == "skipped":
            continue
        finished = counted(x) if counts is None else counts.get(x.name, counted(x))
        done += finished
        if x.state in TERMINAL:
            total += finished
            continue
        total += max(x.n_trials, finished)
        left = max(0, x.n_trials - finished)
        if left == 0:
            continue
        seconds = per_trial.get(x.name)
        if seconds is None:
            params = budget_params(x.budget)
            seconds = None if rate is None or params is None else rate * params
        if seconds is None:
            unknown = True
        else:
            work += left * seconds
    if unknown or (work > 0 and not pace):
        return Progress(done, total, None)
    return Progress(done, total, work / pace if work > 0 and pace else 0.0)


def short_duration(seconds: float) -> str:
    """2h10m, 4m05s, 12s, 3d04h."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
