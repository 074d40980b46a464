"""`python -m engine --config PATH [--storage URL] [--workers N|auto]`

JSON-line events on stdout (nothing else ever goes there), commands on stdin, the same
protocol on the unix socket outputs/<campaign>/engine.sock. Stdin EOF or SIGHUP (the
front-end quit) leaves the engine running headless until the campaign ends, a Stop
command, or SIGTERM (= stop now). A config or pre-flight problem gives Hello, one
`error` event per problem, Bye with exit code 2, and nothing is started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from typing import IO, Any

from engine import protocol as p
from engine.campaign.schema import duration_arg
from engine.env_faults import EXIT_ENVIRONMENT, describe_fault
from engine.errors import UserError, UserErrors
from engine.worker.pool import workers_arg

EXIT_USAGE = 2


class _SafeStream:
    """stderr that survives its reader going away, copied to the campaign's engine.log."""

    def __init__(self, original: IO[str]) -> None:
        self.original: IO[str] | None = original
        self.file: IO[str] | None = None

    def write(self, text: str) -> int:
        if self.original is not None:
            try:
                self.original.write(text)
                self.original.flush()
            except (OSError, ValueError):
                self.original = None
        if self.file is not None:
            with contextlib.suppress(OSError, ValueError):
                self.file.write(text)
                self.file.flush()
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 2


def _fail(
    out: IO[str],
    lines: list[str],
    campaign: str,
    config: str,
    exit_code: int = EXIT_USAGE,
    reason: str | None = None,
) -> int:
    events: list[p.Event] = [
        p.Hello(
            protocol_version=p.PROTOCOL_VERSION,
            engine_version="0.1.0",
            campaign=campaign,
            config_path=config,
            storage="",
            pid=os.getpid(),
            host=socket.gethostname(),
            workers=0,
        )
    ]
    events += [p.ErrorRaised(message=line) for line in lines]
    if reason is None:
        why = "config or pre-flight error" if exit_code == EXIT_USAGE else "environment fault"
        reason = f"{why}; nothing started"
    events.append(p.Bye(reason=reason, exit_code=exit_code))
    for line in lines:
        print(f"hpotui: {line}", file=sys.stderr)
    with contextlib.suppress(OSError, ValueError):
        for event in events:
            out.write(p.encode(event) + "\n")
        out.flush()
    return exit_code


def _lock_campaign(folder: Path) -> Any:
    """Hold outputs/<campaign>/engine.lock for the life of the process (released by the
    kernel even on kill -9). Raises UserError if another engine holds it."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / "engine.lock", "a+")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = (
            (folder / "engine.pid").read_text().strip() if (folder / "engine.pid").exists() else "?"
        )
        raise UserError(
            f"another engine is running this campaign (pid {pid})",
            where=str(folder),
            hint="`hpotui` attaches to it; stop it first to start a new one",
        ) from None
    (folder / "engine.pid").write_text(f"{os.getpid()}\n")
    return handle


PREFLIGHT = "pre-flight: "  # prefix of the log lines that carry the pre-flight's findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine")
    parser.add_argument("--config", help="campaign TOML (default: configs/demo.toml)")
    parser.add_argument(
        "--storage",
        help="Optuna storage URL (default: $HPOTUI_STORAGE, else the config's, else a journal "
        "in outputs/); front-ends pass it in $HPOTUI_STORAGE, off the command line",
    )
    parser.add_argument("--workers", type=workers_arg, help='number of local workers or "auto"')
    parser.add_argument("--device", help="override every experiment's device (cpu, cuda, ...)")
    parser.add_argument("--no-monitor", action="store_true", help="no hardware sampling")
    parser.add_argument(
        "--storage-patience",
        type=duration_arg,
        help='how long a database outage is waited out (seconds or "5m"; default: the '
        "config's storage_patience, else 5 minutes)",
    )
    parser.add_argument(
        "--command",
        action="append",
        default=[],
        metavar="JSON",
        help="a protocol command (one JSON line) applied before the engine first looks at "
        "the queue, its Reply on stdout; front-ends start an engine with the command of "
        "the key that needed one (re-run an experiment of a finished campaign)",
    )
    args = parser.parse_args(argv)
    for line in args.command:
        try:
            p.decode_command(line)
        except p.ProtocolError as error:
            parser.error(f"--command: {error}")

    # Protocol lines go to the real stdout; stray prints (libraries) go to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    safe = _SafeStream(sys.stderr)
    sys.stderr = safe  # type: ignore[assignment]
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    from engine import paths
    from engine.campaign.config import load_campaign
    from engine.process.preflight import run_preflight
    from engine.storage.backend import requested_storage
    from engine.storage.recovery import pidless_margin_s

    config = Path(args.config) if args.config else paths.default_config()
    campaign_name = ""
    try:
        campaign = load_campaign(config)
        campaign_name = campaign.name
        report = run_preflight(campaign, requested_storage(args.storage))
        report.raise_if_problems()
        pidless_margin_s()  # a bad $HPOTUI_PIDLESS_MARGIN stops here, before any write
    except UserErrors as errors:
        return _fail(out, errors.lines(), campaign_name, str(config))
    except UserError as error:
        return _fail(out, [str(error)], campaign_name, str(config))

    import dataclasses

    from engine.process.runner import Engine
    from engine.storage.backend import is_journal
    from engine.storage.outage import open_guarded

    url = report.storage_url
    if url and not is_journal(url):  # a bigger machine may join: they wait for it
        report.excluded = []  # (engine.worker.fit: every experiment keeps its whole grid)
    if report.excluded:
        kept = tuple(e for e in campaign.experiments if e.name not in report.excluded)
        campaign = dataclasses.replace(campaign, experiments=kept)
    stops = {"n": 0, "now": 0}
    folder = paths.outputs_dir() / campaign.name
    try:
        lock = _lock_campaign(folder)
    except UserError as error:
        return _fail(out, [str(error)], campaign_name, str(config))
    with contextlib.suppress(OSError):
        safe.file = open(folder / "engine.log", "a", encoding="utf-8")  # noqa: SIM115
    patience = args.storage_patience or campaign.storage_patience_s
    repairs: list[str] = []  # a torn journal tail cut back (engine/storage/journal_check.py)
    try:
        storage = open_guarded(
            url, patience, None, give_up=lambda: bool(stops["now"]), warn=repairs.append
        )
    except (UserError, OSError) as error:
        fault = describe_fault(error)
        if fault is None and not isinstance(error, UserError):
            raise
        with contextlib.suppress(OSError):
            (folder / "engine.pid").unlink()
        lock.close()
        code = EXIT_ENVIRONMENT if fault else EXIT_USAGE
        return _fail(out, [fault or str(error)], campaign_name, str(config), code)
    report.warnings[:0] = repairs
    engine = Engine(
        campaign,
        storage,
        url,
        out=out,
        workers=args.workers if args.workers is not None else campaign.workers,
        device=args.device,
        monitor=not args.no_monitor,
        config_path=str(config),
    )
    engine.workers_explicit = args.workers is not None
    from engine.monitor.keep_awake import KeepAwake

    awake = KeepAwake.hold(os.getpid(), f"hpotui campaign {campaign.name} running")
    engine.keeping_awake = lambda: awake.holding  # shown with each hardware sample
    if awake.holding and awake.command:
        engine.notes.append(("info", f"keeping this machine awake ({awake.command[0]})"))
    try:
        return _serve(engine, report, out, campaign_name, str(config), stops, args.command)
    finally:
        awake.release()
        with contextlib.suppress(OSError):
            (folder / "engine.pid").unlink()
        lock.close()


def _serve(
    engine: Any,
    report: Any,
    out: IO[str],
    name: str,
    config: str,
    stops: dict[str, int],
    commands: list[str],
) -> int:
    """Prepare the studies, then run the campaign until Bye. `stops["now"]` is set by a
    signal that means "stop now", so a database outage is not waited out past it.
    `commands` are applied before the main loop first decides anything (e.g. that a
    finished campaign has nothing to do)."""
    from engine.storage.outage import EXIT_STORAGE_UNREACHABLE, StorageUnreachable

    try:
        engine.prepare()
    except StorageUnreachable as error:  # the database went away during start-up
        return _fail(out, [str(error)], name, config, EXIT_STORAGE_UNREACHABLE, str(error))
    except UserErrors as errors:
        return _fail(out, errors.lines(), name, config)
    except UserError as error:
        return _fail(out, [str(error)], name, config)
    except OSError as error:  # disk full or outputs unwritable at start-up
        fault = describe_fault(error)
        if fault is None:
            raise
        return _fail(out, [fault], name, config, EXIT_ENVIRONMENT)
    engine.notes += [("info", f"{PREFLIGHT}{line}") for line in report.lines]
    engine.notes += [("warning", line) for line in report.warnings]
    engine.notes += [
        ("warning", f"{x} excluded: no architecture fits this device") for x in report.excluded
    ]

    def on_signal(signum: int, frame: Any) -> None:
        if signum == signal.SIGINT:
            stops["n"] += 1
            mode = "after_current" if stops["n"] == 1 else "now"
        else:
            mode = "now"
        stops["now"] = int(mode == "now")
        engine.inbox.put(("signal", mode, None))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    engine.first_commands = list(commands)
    engine.channels.read_stdin(sys.stdin.buffer)
    return int(engine.run())


def run() -> None:
    """The process itself (`python -m engine`): main, then an exit that waits for no thread."""
    code = main()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(code)  # daemon threads blocked on stdin/socket reads must not hold up exit
