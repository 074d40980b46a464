"""`hpotui worker --storage URL [--campaign NAME] [--workers N] [CONFIG]`: join a campaign.

Runs this machine's workers on a campaign kept in a shared storage (PostgreSQL), next
to the workers of other machines; see docs/distributed.md. With CONFIG, the campaign's
studies are created first when they do not exist yet. The datasets must be the
campaign's to the byte (sha256), else it refuses with exit 2 before any training.
One line per trial on stdout (`--json`: the protocol events); the workers' logs go to
outputs/<campaign>/worker-<host>.log. Exit 0 when the campaign is complete, 1 when an
experiment failed or the workers could not run, 2 on bad input, 130 when stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from engine import protocol as p
from engine.campaign.schema import duration_arg
from engine.errors import UserError
from engine.storage.backend import STORAGE_ENV
from engine.storage.pool import DEFAULT_POOL
from engine.worker.pool import workers_arg


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "worker",
        help="run this machine's workers on a campaign in a shared storage",
        description="Join a campaign kept in a shared Optuna storage (PostgreSQL) from this "
        "machine: check the datasets by checksum, then run trials until the campaign is "
        "complete. Ctrl-C finishes the running trials; a second Ctrl-C interrupts them "
        "(they are re-run by any worker).",
        epilog="exit status: 0 the campaign is complete; 1 an experiment failed, or every "
        "worker stopped; 2 bad input; 3 a worker met a full disk or an unwritable path (one "
        "line names it; fix it and run the same command to resume); 75 the storage stayed "
        "unreachable past --storage-patience (run again to resume); 130 stopped.",
    )
    parser.add_argument(
        "config", nargs="?", help="campaign TOML: create its studies if the storage lacks them"
    )
    parser.add_argument(
        "--storage",
        help=f"storage URL, e.g. postgresql://USER:PASSWORD@HOST/DB (default: ${STORAGE_ENV}, "
        "which keeps the password off the command line)",
    )
    parser.add_argument("--campaign", help="campaign name (default: the config's, or the only one)")
    parser.add_argument(
        "--workers", type=workers_arg, default="auto", help='worker processes here, or "auto"'
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads per worker (default: cores / workers)"
    )
    parser.add_argument("--device", help="override the experiments' device (cpu, cuda, mps)")
    parser.add_argument(
        "--heartbeat",
        type=int,
        help="seconds between a worker's heartbeats, set when the campaign is created (60)",
    )
    parser.add_argument(
        "--grace",
        type=int,
        help="seconds without heartbeat before a trial is re-run elsewhere (3 x heartbeat)",
    )
    parser.add_argument(
        "--no-monitor", action="store_true", help="no thermal or memory policy on this machine"
    )
    parser.add_argument(
        "--storage-patience",
        type=duration_arg,
        help='how long a database outage is waited out (seconds or "5m"; default: the '
        "config's storage_patience, else 5 minutes)",
    )
    parser.add_argument(
        "--memory-limit",
        help="memory one trial may use on this machine, e.g. 8GiB (default: what the "
        "device has free); architectures that need more are left to bigger machines",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        help=f"database connections per process at most (default {DEFAULT_POOL})",
    )
    parser.add_argument("--json", action="store_true", help="print protocol events, not lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    import optuna
    from optuna.exceptions import ExperimentalWarning

    from engine.fleet.setup import Scrubber

    # Optuna flags its heartbeat as experimental on every open; it is what we rely on.
    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say it better

    from engine.storage.outage import EXIT_STORAGE_UNREACHABLE, StorageUnreachable

    url = _storage_url(args)
    scrub = Scrubber(url)
    try:
        return _run(args, url, scrub)
    except UserError:
        raise
    except StorageUnreachable as error:  # past --storage-patience: resumable
        raise UserError(scrub(str(error)), exit_code=EXIT_STORAGE_UNREACHABLE) from None
    except Exception as error:  # the database went away: one line, never the password
        if type(error).__module__.split(".")[0] not in ("sqlalchemy", "optuna", "psycopg"):
            raise
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(scrub(first), where="storage", exit_code=1) from None


def _storage_url(args: argparse.Namespace) -> str:
    from engine.storage.backend import requested_storage

    url = requested_storage(args.storage) or ""
    if not url and args.config:
        from engine.campaign.config import load_campaign

        url = load_campaign(Path(args.config)).storage or ""
    if not url:
        raise UserError(
            "needs the campaign's storage",
            where="--storage",
            hint=f"pass --storage postgresql://USER:PASSWORD@HOST/DB or set ${STORAGE_ENV}",
        )
    return str(url)


def _run(args: argparse.Namespace, url: str, scrub: Any) -> int:
    from engine import paths
    from engine.env_faults import EXIT_ENVIRONMENT
    from engine.fleet.node import NodeOptions, WorkerNode, install_signal_handlers
    from engine.fleet.setup import campaigns_in, create_campaign
    from engine.storage.backend import check_storage, is_journal, mask_url
    from engine.storage.outage import DEFAULT_PATIENCE_S, StorageUnreachable, open_guarded
    from engine.storage.pool import set_pool_size
    from engine.storage.recovery import host_name
    from engine.worker.fit import parse_bytes
    from engine.worker.heartbeat import HeartbeatSettings

    problem = check_storage(url)
    if problem:
        raise UserError(problem, where="--storage")
    memory_limit = parse_bytes(args.memory_limit) if args.memory_limit else None
    set_pool_size(args.pool_size)
    say = _printer(args.json)
    campaign = None
    if args.config:
        campaign = _checked_campaign(Path(args.config), url)
        if args.campaign and args.campaign != campaign.name:
            raise UserError(
                f"the config names campaign {campaign.name!r}, not {args.campaign!r}",
                where="--campaign",
            )
    say(p.LogLine(level="info", message=f"storage {mask_url(url)}, host {host_name()}"))
    patience = args.storage_patience or (
        campaign.storage_patience_s if campaign is not None else DEFAULT_PATIENCE_S
    )
    storage = open_guarded(url, patience, say, source=host_name())
    if campaign is not None:
        settings = HeartbeatSettings.of(args.heartbeat, args.grace)
        for line in create_campaign(storage, campaign, settings):
            say(p.LogLine(level="info", message=line))
        name = campaign.name
    else:
        name = args.campaign or _only_campaign(campaigns_in(storage), mask_url(url))
    if is_journal(url):
        say(
            p.LogLine(
                level="warning", message="a journal file is shared only by this machine's processes"
            )
        )
    workers, threads = _workers(args.workers, storage, name, args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"needs at least 1 thread, got {args.threads}", where="--threads")
        threads = args.threads
    notifier = _notifier(name, campaign, say)

    def on_event(event: p.Event) -> None:
        say(event)
        notifier.on_event(event)

    node = WorkerNode(
        storage,
        url,
        name,
        on_event=on_event,
        options=NodeOptions(
            workers=workers,
            threads=threads,
            device=args.device,
            monitor=not args.no_monitor,
            storage_patience_s=patience,
            log_path=paths.outputs_dir() / name / f"worker-{_safe(host_name())}.log",
            memory_limit=memory_limit,
        ),
    )
    for line in node.prepare():
        say(p.LogLine(level="info", message=line))
    say(p.LogLine(level="info", message=f"{workers} worker(s), {threads} thread(s) each"))
    install_signal_handlers(node)
    try:
        code = node.run()
    except StorageUnreachable as error:  # past the patience: exit 75, resumable
        notifier.campaign_stopped(scrub(f"worker node {host_name()}: {error}"))
        notifier.close()
        raise
    except Exception as error:
        notifier.engine_crashed(
            scrub(f"worker node {host_name()}: {type(error).__name__}: {error}")
        )
        notifier.close()
        raise
    if code == 0:
        notifier.campaign_done(f"campaign complete (worker node {host_name()})")
    elif code == EXIT_ENVIRONMENT and node.fault is not None:
        notifier.campaign_stopped(f"worker node {host_name()}: {node.fault}")
    notifier.close()  # bounded: the last message goes out before the exit
    return code


def _notifier(name: str, campaign: Any, say: Any) -> Any:
    """Notifications of this node ([notify] of the config, HPOTUI_NOTIFY_URLS): its
    thermal and failed-experiment events, its end and its crash (engine.notify)."""
    from engine.notify import Notifier, NotifySpec, install
    from engine.storage.recovery import host_name

    spec = campaign.notify if campaign is not None else NotifySpec()
    notifier = Notifier(
        name,
        spec.with_env(),
        host=host_name(),
        log=lambda level, text: say(p.LogLine(level, text)),
    )
    install(notifier)  # for engine.notify.storage_outage
    return notifier


def _checked_campaign(config: Path, url: str) -> Any:
    """The config, loaded and pre-flighted (exit 2 with every problem). Experiments
    that do not fit this machine are kept: a bigger machine may join and run them
    (engine.worker.fit)."""
    from engine.campaign.config import load_campaign
    from engine.process.preflight import run_preflight

    campaign = load_campaign(config)
    report = run_preflight(campaign, url)
    report.raise_if_problems()
    return campaign


def _only_campaign(names: list[str], masked: str) -> str:
    if len(names) == 1:
        return names[0]
    if not names:
        raise UserError(
            f"storage {masked} holds no campaign",
            where="--campaign",
            hint="give the campaign's config once to create it: hpotui worker --storage URL CONFIG",
        )
    raise UserError(
        f"storage {masked} holds several campaigns ({', '.join(names)}); name one",
        where="--campaign",
    )


def _workers(spec: str, storage: Any, campaign: str, device: str | None) -> tuple[int, int]:
    from engine.storage.queue import CampaignQueue
    from engine.worker.pool import auto_workers, resolve_worker_count

    def auto(cores: int) -> tuple[int, int]:
        from engine.train.device import resolve_device

        entries = CampaignQueue(storage, campaign).entries(with_trials=False)
        largest = max((int(e.grid[-1]["n_params"]) for e in entries if e.grid), default=0)
        wanted = device or (entries[0].config.device if entries else "auto")
        fused = any(e.config.fuse != 1 for e in entries)
        return auto_workers(cores, str(resolve_device(wanted)), largest, fused)

    return resolve_worker_count(spec, auto)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "host"


def _printer(as_json: bool) -> Any:
    def say(event: p.Event) -> None:
        if as_json:
            line = p.encode(event)
        else:
            text = describe(event)
            if text is None:
                return
            line = f"{time.strftime('%H:%M:%S')} {text}"
        try:
            print(line, flush=True)
        except BrokenPipeError:
            sys.stdout = sys.stderr  # keep working when the reader of our output is gone

    return say


def describe(event: p.Event) -> str | None:
    """One line for a person, or None for events not worth a line (epochs)."""
    if isinstance(event, p.TrialStarted):
        a = event.architecture
        arch = f"d{a.get('d_model')}-L{a.get('n_layers')}-h{a.get('n_heads')}" if a else ""
        extreme = " (forced extreme)" if event.forced_extreme else ""
        return f"[{event.worker}] {event.experiment} #{event.trial} started {arch} {event.n_params} params{extreme}"
    if isinstance(event, p.TrialFinished):
        value = f" value {event.value:.4f}" if event.value is not None else ""
        reason = f" ({event.reason})" if event.reason else ""
        return (
            f"[{event.worker}] {event.experiment} #{event.trial} {event.state}{value} "
            f"in {event.duration_s:.1f}s{reason}"
        )
    if isinstance(event, p.ExperimentFinished):
        best = f", best {event.best_value:.4f}" if event.best_value is not None else ""
        why = f" ({event.reason})" if event.reason else ""
        return f"{event.experiment}: {event.state}{best}{why}"
    if isinstance(event, p.ThermalChanged):
        return f"thermal: {event.previous} -> {event.state} ({event.reason})"
    if isinstance(event, p.LogLine):
        return event.message if event.level == "info" else f"{event.level}: {event.message}"
    if isinstance(event, p.ErrorRaised):
        return f"error: {event.message}"
    if isinstance(event, p.StorageOutage):
        from hpotui.state import outage_line

        return outage_line(event)
    return None
