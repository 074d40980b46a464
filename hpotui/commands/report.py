"""`hpotui report [CONFIG or campaign name] [--storage URL] [--seeds 3] [--top 3]
[--no-retrain] [--json]`.

The scaling report of a campaign: per budget x horizon the search's top configurations,
each retrained with several seeds on train+validation and tested once on the untouched
test split, four baselines on the same split (constant prior, persistence, logistic
regression, oracle constant) with a sentence each, and a power-law fit of loss against
parameter count per horizon whose interval sees configurations and seeds. Written to
outputs/<campaign>/report/ (markdown, CSV, JSON) and printed. Retraining is stored in the
campaign's storage, so a second run reuses it and trains nothing.

Retraining takes minutes, so a progress bar with an ETA counts the runs still to train:
on the terminal, or on stderr when stdout is not one (a pipe keeps only the report).
`--json` prints report.json alone on stdout; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
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
        "--top",
        type=int,
        default=3,
        help="configurations retrained per experiment: the search's best trials, distinct "
        "architectures first (default 3)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as JSON on stdout (nothing else)"
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
    from engine.report.tables import report_json, write_report
    from engine.storage.backend import default_storage_url, mask_url, requested_storage

    if args.seeds < 0:
        raise UserError(f"--seeds must be >= 0, got {args.seeds}", where="command line")
    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}", where="command line")
    if args.bootstrap < 1:
        raise UserError(f"--bootstrap must be >= 1, got {args.bootstrap}", where="command line")
    if args.device:
        from engine.train.device import resolve_device

        resolve_device(args.device)  # an unknown or absent device: UserError, exit 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    campaign, config_storage = campaign_of(args.target)
    url = requested_storage(args.storage) or config_storage or default_storage_url(campaign)
    storage = open_existing_storage(url)
    stdout_is_terminal = sys.stdout.isatty()
    console = Console(highlight=False, stderr=args.json)  # --json: stdout holds JSON only
    options = ReportOptions(
        seeds=args.seeds,
        top_k=args.top,
        retrain=not args.no_retrain,
        device=args.device,
        n_boot=args.bootstrap,
    )
    bar_console = Console(stderr=args.json or not stdout_is_terminal)
    progress = RetrainProgress(bar_console)

    def on_seed(exp: Any, run: Any) -> None:
        how = "stored" if run.reused else f"trained in {run.duration_s:.1f} s"
        bce = run.test_metrics.get("bce", float("nan"))
        progress.console.print(
            f"  {exp.name} trial #{run.source_trial} seed {run.seed}: test BCE {bce:.4f} "
            f"(retrain trial #{run.trial_number}, {how})",
            markup=False,
        )
        if not run.reused:
            progress.advance()

    try:
        report = build_report(
            storage,
            campaign,
            options,
            storage_label=mask_url(url),
            on_seed=on_seed,
            on_step=lambda line: progress.console.print(line, markup=False),
            on_plan=progress.start,
        )
    finally:
        progress.stop()
    written = write_report(report)
    if args.json:
        print(report_json(report), end="")
    else:
        _print(console, report)
    console.print(f"written: {written[0].parent}/ ({', '.join(p.name for p in written)})")
    return 1 if any(row.error for row in report.rows) else 0


class RetrainProgress:
    """A progress bar with an ETA over the runs still to train (stored runs don't count);
    lines printed meanwhile go through its console, above the bar."""

    def __init__(self, console: Any) -> None:
        self._console = console
        self._progress: Any = None
        self._task: Any = None

    @property
    def console(self) -> Any:
        return self._progress.console if self._progress is not None else self._console

    def start(self, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if total <= 0:
            return
        self._progress = Progress(
            TextColumn("retraining"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
        )
        self._progress.start()
        self._task = self._progress.add_task("retraining", total=total)

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _print(console: Any, report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from engine.report import tables
    from engine.report.build import versus_lines
    from engine.report.splits import splits_lines

    console.print(f"{report.campaign}: headline", style="bold")
    for line in report.headline:
        console.print(f"  {line}", markup=False)
    split_lines = splits_lines(report)
    if split_lines:
        console.print("splits (test untouched by the search; label-drift lines in report.md):")
    for line in split_lines:
        console.print(f"  {line}", markup=False)
    console.print(f"fits on {tables.fit_source_text(report)}", markup=False)
    for title, headers, rows in (
        ("power-law fits", tables.FIT_HEADERS, tables.fit_table(report)),
        ("test split: retrained runs", tables.HOLDOUT_HEADERS, tables.holdout_table(report)),
        ("baselines on the same test windows", tables.BASELINE_HEADERS,
         tables.baseline_table(report)),
        ("configurations retrained", tables.CONFIG_HEADERS, tables.config_table(report)),
    ):  # fmt: skip
        if not rows:
            continue
        table = Table(title=f"{report.campaign}: {title}", title_justify="left")
        for header in headers:
            table.add_column(header, overflow="fold")
        for cells in rows:
            table.add_row(*(escape(c) for c in cells))
        console.print(table)
    lines = versus_lines(report)
    if lines:
        console.print("models against each baseline (test split):")
    for line in lines:
        console.print(f"  {line}", markup=False)
    for warning in report.warnings:
        console.print(f"  [yellow]warning: {escape(warning)}[/yellow]")
    for row in report.rows:
        if row.error:
            console.print(f"  [red]{escape(row.result.name)}: {escape(row.error)}[/red]")
        elif row.note:
            console.print(f"  {escape(row.result.name)}: {escape(row.note)}")
