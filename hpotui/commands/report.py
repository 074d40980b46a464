"""`hpotui report [CONFIG or campaign name] [--storage URL] [--seeds 3] [--no-retrain]`.

The scaling report of a campaign: per budget x horizon the search's best trial, that
configuration retrained with several seeds on train+validation and tested once on the
untouched test split, the constant-prior and logistic-regression baselines on the same
split, and a power-law fit of loss against parameter count per horizon. Written to
outputs/<campaign>/report/ (markdown, CSV, JSON) and printed as a table. Retraining is
stored in the campaign's storage, so a second run reuses it and trains nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.errors import UserError


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="scaling report of a campaign: retrained test metrics, baselines, power-law fit",
        description="Report a campaign's results: best trial per experiment, its retraining "
        "with several seeds evaluated once on the test split, baselines, and a power-law fit "
        "of loss against parameter count per horizon (outputs/<campaign>/report/).",
    )
    parser.add_argument(
        "target",
        nargs="?",
        metavar="CONFIG_OR_CAMPAIGN",
        help="campaign TOML or campaign name (default: configs/demo.toml)",
    )
    parser.add_argument(
        "--storage", help="Optuna storage URL (default: $HPOTUI_STORAGE, else the campaign's)"
    )
    parser.add_argument(
        "--seeds", type=int, default=3, help="retraining seeds per experiment (default 3)"
    )
    parser.add_argument(
        "--no-retrain",
        action="store_true",
        help="no retraining: fit the search's best validation losses (biased; says so)",
    )
    parser.add_argument("--device", help="device for retraining (default: each experiment's)")
    parser.add_argument(
        "--bootstrap", type=int, default=2000, help="bootstrap replicates of the fit (default 2000)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import optuna
    from rich.console import Console

    from engine.report.build import ReportOptions, build_report
    from engine.report.collect import campaign_of, open_existing_storage
    from engine.report.tables import write_report
    from engine.storage import default_storage_url, mask_url, requested_storage

    if args.seeds < 0:
        raise UserError(f"--seeds must be >= 0, got {args.seeds}", where="command line")
    if args.bootstrap < 1:
        raise UserError(f"--bootstrap must be >= 1, got {args.bootstrap}", where="command line")
    if args.device:
        from engine.train.device import resolve_device

        resolve_device(args.device)  # an unknown or absent device: UserError, exit 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    campaign, config_storage = campaign_of(args.target)
    url = requested_storage(args.storage) or config_storage or default_storage_url(campaign)
    storage = open_existing_storage(url)
    console = Console(highlight=False)
    options = ReportOptions(
        seeds=args.seeds,
        retrain=not args.no_retrain,
        device=args.device,
        n_boot=args.bootstrap,
    )

    def on_seed(exp: Any, run: Any) -> None:
        how = "stored" if run.reused else f"trained in {run.duration_s:.1f} s"
        bce = run.test_metrics.get("bce", float("nan"))
        console.print(
            f"  {exp.name} seed {run.seed}: test BCE {bce:.4f} "
            f"(retrain trial #{run.trial_number}, {how})",
            markup=False,
        )

    report = build_report(
        storage,
        campaign,
        options,
        storage_label=mask_url(url),
        on_seed=on_seed,
        on_step=lambda line: console.print(line, markup=False),
    )
    written = write_report(report)
    _print(console, report)
    console.print(f"written: {written[0].parent}/ ({', '.join(p.name for p in written)})")
    return 1 if any(row.error for row in report.rows) else 0


def _print(console: Any, report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from engine.report import tables

    for title, headers, rows in (
        ("search: best trial per experiment", tables.SEARCH_HEADERS, tables.search_table(report)),
        (
            "test split: retrained seeds and baselines",
            tables.HOLDOUT_HEADERS,
            tables.holdout_table(report),
        ),
    ):
        table = Table(title=f"{report.campaign}: {title}", title_justify="left")
        for header in headers:
            table.add_column(header, overflow="fold")
        for cells in rows:
            table.add_row(*cells)
        console.print(table)
    console.print(f"power-law fit per horizon, on {tables.fit_source_text(report)}:")
    for line in tables.fit_lines(report):
        console.print(f"  {line}")
    for warning in report.warnings:
        console.print(f"  [yellow]warning: {escape(warning)}[/yellow]")
    for row in report.rows:
        if row.error:
            console.print(f"  [red]{escape(row.result.name)}: {escape(row.error)}[/red]")
        elif row.note:
            console.print(f"  {escape(row.result.name)}: {escape(row.note)}")
