"""`hpotui check [CONFIG] [--storage URL]`: the campaign's pre-flight, and nothing else.

Prints what pre-flight found (datasets, split sizes per horizon, grid sizes and
extremes, memory of each budget's largest architecture) and every problem at once.
Exit 0 when the campaign can start, 2 when it cannot; nothing is started or written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine import paths


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "check",
        help="check a campaign config and everything it needs, without training",
        description="Run only the pre-flight of a campaign: config, datasets, splits, "
        "architecture grids, memory, storage and outputs. Exit 0 if it can start, 2 if not.",
    )
    parser.add_argument("config", nargs="?", help="campaign TOML (default: configs/demo.toml)")
    parser.add_argument(
        "--storage",
        help="Optuna storage URL (default: $HPOTUI_STORAGE, else the config's, else the "
        "journal file in outputs/)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.campaign.config import load_campaign
    from engine.process.preflight import run_preflight
    from engine.storage.backend import requested_storage

    config = Path(args.config) if args.config else paths.default_config()
    campaign = load_campaign(config)  # config problems: UserErrors, printed by the CLI
    report = run_preflight(campaign, requested_storage(args.storage))
    print(f"checking {config}")
    for line in report.lines:
        print(f"  {line}")
    for warning in report.warnings:
        print(f"  warning: {warning}")
    if report.journal is not None and report.journal.torn_tail:
        found = report.journal
        print(
            f"  warning: storage {found.path}: the last record is incomplete "
            f"({found.tail_bytes} bytes at byte {found.good_end}: a write cut short); the "
            f"next run copies the file to {found.path.name}.damaged-<time> and cuts it back "
            f"to the {found.records} complete record(s)"
        )
    report.raise_if_problems()
    print(f"ok: {len(campaign.experiments) - len(report.excluded)} experiment(s) ready")
    return 0
