"""`hpotui` command line: the only place that decides exit codes.

    hpotui [CONFIG]                 the dashboard (Textual) on a campaign
    hpotui --batch [CONFIG]         the same campaign headless (rich lines or --json events)
    hpotui SUBCOMMAND ...           data, grid, train, hw, check, report, worker, hosts,
                                    notify, serve

Each subcommand lives in `hpotui/commands/<name>.py` and exposes
`register(subparsers) -> None`, which adds its parser and sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from engine.campaign.schema import duration_arg
from engine.errors import UserError, UserErrors
from engine.worker.pool import workers_arg

SUBCOMMANDS = (
    "data",
    "grid",
    "train",
    "hw",
    "check",
    "report",
    "worker",
    "hosts",
    "notify",
    "serve",
    "status",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3  # disk full or outputs unwritable (engine/env_faults.py); resumable
EXIT_INTERRUPTED = 130
EXIT_STORAGE_UNREACHABLE = 75  # the database stayed away past storage_patience; resumable


def _campaign_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpotui",
        description="A terminal control room for long hyperparameter-search campaigns.",
        epilog="subcommands: " + ", ".join(SUBCOMMANDS) + " (hpotui SUBCOMMAND --help)",
    )
    parser.add_argument("config", nargs="?", help="campaign TOML (default: configs/demo.toml)")
    parser.add_argument("--batch", action="store_true", help="run headless, one line per trial")
    parser.add_argument("--json", action="store_true", help="with --batch: print raw events")
    parser.add_argument(
        "--storage",
        help="Optuna storage URL (default: $HPOTUI_STORAGE, else the config's, else the "
        "journal file in outputs/)",
    )
    parser.add_argument("--workers", type=workers_arg, help='number of local workers or "auto"')
    parser.add_argument(
        "--storage-patience",
        type=duration_arg,
        help='how long a database outage is waited out (seconds or "5m"; default: the '
        "config's storage_patience, else 5 minutes)",
    )
    parser.add_argument(
        "--pool-size", type=int, help="database connections per process at most (default 3)"
    )
    parser.add_argument("--version", action="version", version=_version())
    return parser


def _version() -> str:
    from hpotui import __version__

    return f"hpotui {__version__}"


def _subcommand_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpotui")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"hpotui.commands.{name}")
        module.register(sub)
    return parser


def _run(argv: list[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        args = _subcommand_parser().parse_args(argv)
        return int(args.func(args))
    args = _campaign_parser().parse_args(argv)
    if args.pool_size is not None:  # the engine and its workers inherit it
        from engine.storage.pool import set_pool_size

        set_pool_size(args.pool_size)
    if args.batch:
        from hpotui.batch import run_batch

        return run_batch(args)
    if args.json:
        raise UserError("--json only applies with --batch", where="command line")
    from hpotui.app import run_app

    return run_app(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(argv)
    except UserErrors as errors:
        for line in errors.lines():
            print(f"hpotui: {line}", file=sys.stderr)
        return errors.exit_code
    except UserError as error:
        print(f"hpotui: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("hpotui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
