"""`hpotui report [CONFIG or campaign name] [--storage URL] [--seeds 3] [--top 3]
[--workers N] [--no-retrain] [--json]`.

The scaling verdict of a campaign (docs/report.md): what the design can support, then
per horizon the change in test BCE per decade of parameters with a calibrated interval,
from the search's top configurations retrained with several seeds in each walk-forward
test period; each experiment against four baselines (constant prior, persistence,
logistic regression, oracle constant) by a paired test over test windows, Holm-adjusted;
figures. Written to outputs/<campaign>/report/ (markdown, PNG/SVG, CSV, JSON) and
printed. Retraining is stored in the campaign's storage, so a second run reuses it and
trains nothing.

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
        help="scaling verdict of a campaign: trend per decade, baselines, figures",
        description="Report a campaign's results: what its design can support; the top "
        "configurations of each experiment retrained with several seeds in each walk-forward "
        "test period and tested once; the trend of test BCE per decade of parameters with a "
        "calibrated interval; each experiment against four baselines (paired test, Holm); "
        "figures (outputs/<campaign>/report/).",
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
        "--seeds",
        type=int,
        help="retraining seeds per configuration and test period (default: the config's "
        "[report] seeds, else 3)",
    )
    parser.add_argument(
        "--top",
        type=int,
        help="configurations retrained per experiment: the search's best trials, distinct "
        "architectures first (default: the config's [report] top, else 3)",
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
        "--workers",
        type=int,
        help="processes that retrain in parallel, one torch thread each (default: the "
        "config's [report] workers, else one per CPU core; 1 trains in this process)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import optuna
    from rich.console import Console

    from engine.report.build import ReportOptions, build_report
    from engine.report.collect import campaign_of, open_existing_storage
    from engine.report.files import report_json, write_report
    from engine.report.pool import default_workers
    from engine.storage.backend import default_storage_url, mask_url, requested_storage

    if args.seeds is not None and args.seeds < 0:
        raise UserError(f"--seeds must be >= 0, got {args.seeds}", where="command line")
    if args.top is not None and args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}", where="command line")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}", where="command line")
    if args.device:
        from engine.train.device import resolve_device

        resolve_device(args.device)  # an unknown or absent device: UserError, exit 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    campaign, config_storage, settings = campaign_of(args.target)
    url = requested_storage(args.storage) or config_storage or default_storage_url(campaign)
    storage = open_existing_storage(url)
    stdout_is_terminal = sys.stdout.isatty()
    console = Console(highlight=False, stderr=args.json)  # --json: stdout holds JSON only
    workers = args.workers or settings.workers
    options = ReportOptions(
        seeds=settings.seeds if args.seeds is None else args.seeds,
        top_k=args.top or settings.top,
        retrain=not args.no_retrain,
        device=args.device,
        workers=default_workers() if workers == "auto" else int(workers),
    )
    bar_console = Console(stderr=args.json or not stdout_is_terminal)
    progress = RetrainProgress(bar_console)

    def on_seed(exp: Any, run: Any) -> None:
        how = "stored" if run.reused else f"trained in {run.duration_s:.1f} s"
        bce = run.test_metrics.get("bce", float("nan"))
        progress.console.print(
            f"  {exp.name} period {run.period} trial #{run.source_trial} seed {run.seed}: "
            f"test BCE {bce:.4f} (retrain trial #{run.trial_number}, {run.epochs} epochs, "
            f"{how})",
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
        figures = [p.name for p in written if p.suffix == ".png"]
        print(report_json(report, figures), end="")
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
    from engine.report.splits import splits_lines

    console.print(f"{report.campaign}: what this campaign can support", style="bold")
    for line in report.adequacy.lines() if report.adequacy else []:
        console.print(f"  {line}", markup=False)
    console.print(f"{report.campaign}: headline", style="bold")
    for line in report.headline:
        console.print(f"  {line}", markup=False)
    split_lines = splits_lines(report)
    if split_lines:
        console.print("splits of the search (its test windows untouched by it):")
    for line in split_lines:
        console.print(f"  {line}", markup=False)
    console.print(f"values: {tables.fit_source_text(report)}", markup=False)
    keep = tables.TREND_COMPACT
    trend_rows = [[r[i] for i in keep] for r in tables.trend_table(report)]
    for title, headers, rows in (
        ("trend per decade of parameters", [tables.TREND_HEADERS[i] for i in keep], trend_rows),
        ("experiments against each baseline (test BCE gap, Holm-adjusted; n.d.: no "
         "detectable difference)", tables.comparison_headers(report, compact=True),
         tables.comparison_table(report, compact=True)),
        ("test scores of the retrained runs", tables.HOLDOUT_HEADERS,
         tables.holdout_table(report)),
    ):  # fmt: skip
        if not rows:
            continue
        table = Table(title=f"{report.campaign}: {title}", title_justify="left")
        for header in headers:
            table.add_column(header, overflow="fold")
        for cells in rows:
            table.add_row(*(escape(c) for c in cells))
        console.print(table)
    for warning in report.warnings:
        console.print(f"  [yellow]warning: {escape(warning)}[/yellow]")
    for row in report.rows:
        if row.error:
            console.print(f"  [red]{escape(row.result.name)}: {escape(row.error)}[/red]")
        elif row.note:
            console.print(f"  {escape(row.result.name)}: {escape(row.note)}")
    console.print("baselines per period, configurations, splits and test periods: report.md")
