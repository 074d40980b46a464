"""`hpotui --batch [CONFIG]`: the campaign headless, rendered from the same events as the
dashboard. One line per finished trial plus a live progress line (rich), or the raw
events with --json. Exit codes come from the engine's Bye: 0 all done, 1 an experiment
failed, 2 config or pre-flight error (nothing started), 130 interrupted.

Ctrl-C once asks the engine to finish the running trials and stop; twice, to stop now
(running trials are recorded as interrupted and re-run on resume). Running the same
command again resumes the campaign.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine import protocol as p
from hpotui.batch_lines import arch_label as _arch_label
from hpotui.batch_lines import duration as _duration
from hpotui.batch_lines import objective_text, trial_lines
from hpotui.link import EngineLink, engine_flags
from hpotui.progress import Progress, campaign_progress, concurrency
from hpotui.state import outage_line
from hpotui.widgets.format import plural

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_STORAGE_UNREACHABLE = 75  # engine.storage.outage: the database stayed away; resumable


def _host_changes(known: dict[str, str], hosts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(host, status) of each machine that is new or changed status; updates `known`."""
    changes = []
    for view in hosts:
        host, status = str(view.get("host", "?")), str(view.get("status", "?"))
        if known.get(host) != status:
            known[host] = status
            changes.append((host, status))
    return changes


class BatchView:
    """Turns events into lines and a progress line."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.snapshot: p.QueueSnapshot | None = None
        self.hello: p.Hello | None = None
        self.errors: list[str] = []
        self.trials_done = 0
        self.started = time.monotonic()
        # trials running as far as this view knows (stored running ones, then started
        # here), and each trial's (start, end): the measured pace of the ETA
        self.running: set[tuple[str, int]] = set()
        self.intervals: dict[tuple[str, int], tuple[float, float | None]] = {}
        # "<exp> done" lines held until that experiment's running trials have printed
        self.held: dict[str, Text] = {}
        self.hosts: dict[str, str] = {}  # host -> status last printed
        # per experiment: counted trials (complete, pruned, failed) and their durations,
        # from the storage at start (experiment_trials) plus the trials that end here
        self.counted: dict[str, int] = {}
        self.durations: dict[str, list[float]] = {}
        self.preflight: list[str] = []  # the engine's pre-flight findings, one per check
        self.preflight_shown = False

    def status(self, name: str) -> p.ExperimentStatus | None:
        if self.snapshot is None:
            return None
        return next((e for e in self.snapshot.experiments if e.name == name), None)

    def handle(self, event: p.Event) -> None:
        c = self.console
        if isinstance(event, p.Hello):
            self.hello = event
            if event.workers:
                verb = "resuming" if event.resumed else "starting"
                c.print(
                    f"[bold]{event.campaign}[/]: {verb} with {plural(event.workers, 'worker')}; "
                    f"storage {event.storage}"
                )
        elif isinstance(event, p.QueueSnapshot):
            self._needs_bigger(event)
            self.snapshot = event
            if self.preflight and not self.preflight_shown:
                self.show_preflight()
        elif isinstance(event, p.HostsChanged):
            for host, status in _host_changes(self.hosts, event.hosts):
                style = "red" if status == "lost" else "cyan"
                c.print(f"[{style}]host {host}: {status}[/]")
        elif isinstance(event, p.ExperimentTrials):
            self.stored(event)
        elif isinstance(event, p.TrialStarted):
            self.running.add((event.experiment, event.trial))
            self.intervals[(event.experiment, event.trial)] = (event.ts, None)
        elif isinstance(event, p.TrialFinished):
            self.finished(event)
        elif isinstance(event, p.ExperimentFinished):
            best = "" if event.best_value is None else f", best {event.best_value:.4f}"
            why = f" ({event.reason})" if event.reason else ""
            style = "green" if event.state == "done" else "yellow"
            line = Text(f"{event.experiment} {event.state}{best}{why}", style=style)
            if any(name == event.experiment for name, _ in self.running):
                self.held[event.experiment] = line  # printed after its last trial's line
            else:
                c.print(line)
        elif isinstance(event, p.ThermalChanged):
            c.print(f"[yellow]thermal {event.previous} -> {event.state}: {event.reason}[/]")
        elif isinstance(event, p.StorageOutage):
            c.print(Text(outage_line(event), style="green" if event.reachable else "yellow"))
        elif isinstance(event, p.LogLine):
            if event.message.startswith(PREFLIGHT):
                self.preflight.append(event.message.removeprefix(PREFLIGHT))
            elif self.preflight and not self.preflight_shown:
                self.show_preflight()
            if event.level in ("warning", "error"):
                c.print(f"[yellow]{event.level}: {event.message}[/]")
        elif isinstance(event, p.ErrorRaised):
            self.errors.append(event.message)
        elif isinstance(event, p.Reply) and not event.ok:
            c.print(f"[red]command refused: {event.message}[/]")

    def finished(self, event: p.TrialFinished) -> None:
        key = (event.experiment, event.trial)
        self.running.discard(key)
        self.trials_done += 1
        self.intervals[key] = (event.ts - event.duration_s, event.ts)
        if event.state != "interrupted":
            self.counted[event.experiment] = self.counted.get(event.experiment, 0) + 1
            self.durations.setdefault(event.experiment, []).append(event.duration_s)
        for line in self.trial_lines(event):
            self.console.print(line)
        held = self.held.get(event.experiment)
        if held is not None and not any(name == event.experiment for name, _ in self.running):
            self.console.print(self.held.pop(event.experiment))

    def flush(self) -> None:
        """Print the held `done` lines (the engine is leaving: no trial line will come)."""
        for line in self.held.values():
            self.console.print(line)
        self.held.clear()

    def _needs_bigger(self, snap: p.QueueSnapshot) -> None:
        """Say when an experiment's trials start or stop waiting for a bigger device."""
        for x in snap.experiments:
            before = self.status(x.name)
            if x.needs_bigger != (before.needs_bigger if before else 0):
                if x.needs_bigger:
                    self.console.print(
                        f"[yellow]{x.name}: {x.needs_bigger} trial(s) need a bigger device "
                        "than any live machine's; they wait for one[/]"
                    )
                elif before is not None:
                    self.console.print(f"{x.name}: no trial waits for a bigger device")

    def show_preflight(self) -> None:
        self.preflight_shown = True
        for line in preflight_summary(self.preflight):
            self.console.print(f"[dim]pre-flight[/] {escape(line)}")

    def stored(self, event: p.ExperimentTrials) -> None:
        """What the storage holds at start: counts and durations of earlier sessions."""
        counted = [t for t in event.trials if t.state in ("complete", "pruned", "failed")]
        self.counted[event.experiment] = len(counted)
        self.durations[event.experiment] = [
            t.duration_s for t in counted if t.duration_s is not None
        ]
        self.running = {k for k in self.running if k[0] != event.experiment}
        for t in event.trials:
            key = (event.experiment, t.trial)
            if t.state == "running":
                self.running.add(key)
            if t.started_ts is not None and (t.state == "running" or t.duration_s is not None):
                end = None if t.state == "running" else t.started_ts + (t.duration_s or 0.0)
                self.intervals[key] = (t.started_ts, end)

    def campaign_progress(self) -> Progress | None:
        if self.snapshot is None:
            return None
        pace = concurrency(self.intervals.values())
        return campaign_progress(self.snapshot.experiments, self.durations, pace, self.counted)

    def trial_lines(self, e: p.TrialFinished) -> list[Text]:
        """`[3/12 trials · 4m10s left] 20K_h1  2/6  trial #4  complete ...`: the
        experiment's counted-trial ordinal (interrupted trials count nothing: `-`), then
        Optuna's trial number; fitted to the terminal's width (hpotui.batch_lines)."""
        status = self.status(e.experiment)
        ordinal = "-" if e.state == "interrupted" else str(self.counted.get(e.experiment, 0))
        progress = self.campaign_progress()
        head = f"[{progress.label()}]" if progress is not None else ""
        width = self.console.width if self.console.is_terminal else None
        objective = status.objective if status else "val_bce"
        return trial_lines(e, head, ordinal, status.n_trials if status else None, width,
                           objective)  # fmt: skip

    def progress(self) -> Text:
        snap = self.snapshot
        if snap is None:
            return Text("starting the engine ...")
        active = [x for x in snap.experiments if x.state in ("running", "queued")]
        if not active:
            return Text("finishing ...")
        x = next((x for x in active if x.state == "running"), active[0])
        k = x.n_complete + x.n_pruned + x.n_failed
        best = "-" if x.best_value is None else f"{x.best_value:.4f}"
        progress = self.campaign_progress()
        label = progress.label() if progress is not None else "?"
        running = sum(e.n_running for e in snap.experiments)  # the same snapshot as x's
        text = Text(
            f"▶ {x.name} {k}/{x.n_trials}, {x.n_running} running, best {best} | "
            f"campaign [{label}], {running} running, "
            f"{_duration(time.monotonic() - self.started)} elapsed",
            style="bold cyan",
        )
        text.truncate(self.console.width, overflow="ellipsis")
        return text

    def summary(self, campaign_dir: Path | None) -> Table:
        table = Table(title="best architecture per experiment", title_justify="left")
        for col in ("experiment", "state", "trials", "best (objective)", "architecture", "params"):
            table.add_column(col)
        for x in self.snapshot.experiments if self.snapshot else []:
            best = _best_file(campaign_dir, x.name)
            arch = _arch_label(best.get("architecture") or {}) if best else "-"
            params = f"{best['n_params']:,}" if best and best.get("n_params") else "-"
            value = (
                "-"
                if x.best_value is None
                else f"{x.objective} {objective_text(x.objective, x.best_value)}"
            )
            done = x.n_complete + x.n_pruned + x.n_failed
            table.add_row(x.name, x.state, f"{done}/{x.n_trials}", value, arch, params)
        return table


PREFLIGHT = "pre-flight: "  # as engine/process/main.py prefixes them
# check groups, by what their lines say (engine/process/preflight.py writes them)
GROUPS: tuple[tuple[str, str], ...] = (
    ("campaign", r"^campaign "),
    ("storage", r"^storage: "),
    ("outputs", r"^outputs: "),
    ("data", r"^dataset "),
    ("splits", r"windows .*label rate"),
    ("grids", r" architectures \("),
    ("memory", r" usable on "),
    ("timeouts", r": timeout "),
)


def preflight_summary(lines: list[str]) -> list[str]:
    """One line per check group: a group of one line as it is, a larger one as its
    count and its first line (e.g. `memory: 6 checks, 20K_h1: largest ... fits`)."""
    groups: dict[str, list[str]] = {}
    for line in lines:
        name = next((g for g, pattern in GROUPS if re.search(pattern, line)), "other")
        groups.setdefault(name, []).append(line)
    out = []
    for name in [g for g, _ in GROUPS] + ["other"]:
        found = groups.get(name)
        if not found:
            continue
        if len(found) == 1:
            out.append(found[0] if found[0].startswith(f"{name}:") else f"{name}: {found[0]}")
        else:
            out.append(f"{name}: {len(found)} checks, e.g. {found[0]}")
    return out


def _best_file(campaign_dir: Path | None, experiment: str) -> dict[str, Any] | None:
    if campaign_dir is None:
        return None
    path = campaign_dir / experiment / "best.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def _run(args: argparse.Namespace) -> int:
    from engine import paths

    config = Path(args.config) if args.config else paths.default_config()
    link = await EngineLink.open(
        config, storage=args.storage, workers=args.workers, extra=engine_flags(args)
    )
    console = Console(highlight=False, soft_wrap=True)
    # a terminal wraps long warnings at words (rich), not mid-word; piped, lines stay whole
    console.soft_wrap = not console.is_terminal
    view = BatchView(console)
    interrupts = {"n": 0}
    pending: set[asyncio.Future[None]] = set()  # keeps the send tasks alive
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        interrupts["n"] += 1
        mode: Literal["after_current", "now"] = "after_current" if interrupts["n"] == 1 else "now"
        note = (
            "finishing the running trials, then stopping (Ctrl-C again: stop now)"
            if mode == "after_current"
            else "stopping now; running trials are recorded interrupted and re-run on resume"
        )
        (Console(stderr=True) if args.json else console).print(f"[yellow]{note}[/]")
        pending.add(asyncio.ensure_future(link.send(p.Stop(id=link.new_id(), mode=mode))))

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    bye: p.Bye | None = None
    live = Live(view.progress(), console=console, transient=True, auto_refresh=False)
    use_live = console.is_terminal and not args.json
    if use_live:
        live.start()
    try:
        while True:
            event = await link.next_event()
            if event is None:
                break
            if args.json:
                sys.stdout.write(p.encode(event) + "\n")
                sys.stdout.flush()
                view.snapshot = event if isinstance(event, p.QueueSnapshot) else view.snapshot
                if isinstance(event, p.ErrorRaised):
                    view.errors.append(event.message)
            else:
                view.handle(event)
            if use_live:
                live.update(view.progress(), refresh=True)
            if isinstance(event, p.Bye):
                bye = event
                view.flush()
                break
    finally:
        if use_live:
            live.stop()
        loop.remove_signal_handler(signal.SIGINT)
        await link.close()
    if bye is None:
        for line in link.stderr_tail(20):
            print(line, file=sys.stderr)
        print("hpotui: the engine ended without saying goodbye (see above)", file=sys.stderr)
        return EXIT_FAILED
    if bye.exit_code == EXIT_USAGE:
        for line in view.errors:
            print(f"hpotui: {line}", file=sys.stderr)
        return EXIT_USAGE
    if not args.json:
        folder = paths.outputs_dir() / view.hello.campaign if view.hello else None
        if view.trials_done == 0 and bye.exit_code == 0:
            console.print(f"campaign {view.hello.campaign if view.hello else ''} is complete")
        console.print(view.summary(folder))
        console.print(f"{bye.reason}")
    if bye.exit_code == EXIT_STORAGE_UNREACHABLE:
        print(f"hpotui: {bye.reason}", file=sys.stderr)
    return bye.exit_code


def run_batch(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
