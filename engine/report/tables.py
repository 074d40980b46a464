"""The report's tables, shared by report.md and the terminal (hpotui/commands/report.py),
so the two cannot drift; and report.md itself.

Undefined numbers are "n/a" (never 0); a mean over runs says how many runs had the
metric defined when some did not. Files are written by engine/report/files.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from engine.report.analysis import ALL_PERIODS
from engine.report.baselines import Baseline
from engine.report.build import SUMMARY_METRICS, ExperimentRow, ScalingReport
from engine.report.compare import Comparison
from engine.report.splits import periods_markdown, splits_markdown
from engine.report.words import DifferenceFact, VersusFact, say, trend_test, verdict_text

CONFIG_HEADERS = (
    "experiment",
    "h",
    "rank",
    "search trial",
    "objective (search)",
    "val BCE (search)",
    "architecture",
    "params",
    "best epoch",
)
HOLDOUT_HEADERS = ("experiment", "runs", "test BCE", "ROC-AUC", "PR-AUC", "Brier")
BASELINE_HEADERS = ("h", "period", "baseline", "fitted on", "test BCE", "ROC-AUC", "PR-AUC",
                    "Brier")  # fmt: skip
TREND_HEADERS = ("group", "period", "sizes", "runs", "slope per decade", "interval",
                 "verdict", "80% power at", "exponent")  # fmt: skip


def num(value: float | None, digits: int = 4) -> str:
    """A number, or "n/a" when it is undefined."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def mean_sd(row: ExperimentRow, metric: str) -> str:
    """ "mean ± sd" over the runs where the metric is defined, with how many when not all."""
    values = row.values(metric)
    defined = sum(math.isfinite(v) for v in values)
    mean, sd = row.metric(metric)
    if not math.isfinite(mean):
        return "n/a"
    text = f"{mean:.4f} ± {sd:.4f}" if math.isfinite(sd) else f"{mean:.4f}"
    return text if defined == len(values) else f"{text} ({defined} of {len(values)} defined)"


def config_table(report: ScalingReport) -> list[list[str]]:
    """Per experiment and top configuration, in the order of CONFIG_HEADERS."""
    out: list[list[str]] = []
    for row in report.rows:
        exp = row.result
        if not exp.top:
            out.append([exp.name, str(exp.horizon), "-", "-", "-", "-", "-", "-", "-"])
        for rank, t in enumerate(exp.top, start=1):
            objective = exp.config.objective
            shown = t.value if objective == "val_bce" else 1 - t.value
            out.append(
                [exp.name, str(exp.horizon), str(rank), f"#{t.number}",
                 f"{objective} {num(shown)}", num(t.val_bce), t.architecture.label,
                 f"{t.n_params:,}", "n/a" if t.best_epoch is None else str(t.best_epoch)]
            )  # fmt: skip
    return out


def holdout_table(report: ScalingReport) -> list[list[str]]:
    """Per experiment: threshold-free test scores over its runs (configurations x seeds x
    periods)."""
    return [
        [row.result.name, str(len(row.runs)), *(mean_sd(row, m) for m in SUMMARY_METRICS)]
        for row in report.rows
    ]


def _baseline_cells(horizon: int, b: Baseline) -> list[str]:
    m = b.test_metrics
    name = f"{b.name} (oracle)" if b.oracle else b.name
    return [str(horizon), str(b.period), name, f"{b.fitted_on} ({b.fitted_windows})",
            *(num(m.get(k)) for k in SUMMARY_METRICS)]  # fmt: skip


def baseline_table(report: ScalingReport) -> list[list[str]]:
    """Each horizon's baselines once per period (the experiments of a horizon share its
    test windows; data_spec_warnings says when they do not)."""
    out: list[list[str]] = []
    seen: set[int] = set()
    for row in report.rows:
        if row.baselines and row.result.horizon not in seen:
            seen.add(row.result.horizon)
            out += [_baseline_cells(row.result.horizon, b) for b in row.baselines]
    return out


def trend_table(report: ScalingReport) -> list[list[str]]:
    out = []
    for t in report.trends:
        tr = t.trend
        exponent = ""
        if t.period == ALL_PERIODS and t.factor == "horizon" and t.level in report.exponents:
            e = report.exponents[t.level]
            exponent = (f"{e.alpha:.2f} [{e.low:.2f}, {e.high:.2f}], c = {e.c:.4f}"
                        if e.determined else "not determined")  # fmt: skip
        group = f"h{t.level}" if t.factor == "horizon" else f"{t.factor} {t.level}"
        out.append([
            group, "all" if t.period == ALL_PERIODS else str(t.period), str(tr.n_sizes),
            str(tr.n_runs), num(tr.slope) if math.isfinite(tr.slope) else "n/a",
            tr.interval_text(), tr.verdict, num(tr.min_detectable), exponent,
        ])  # fmt: skip
    return out


TREND_COMPACT = (0, 1, 2, 4, 5, 6)  # the terminal's columns of TREND_HEADERS
SHORT_WORDS = {"beats": "beats", "loses to": "loses", "no detectable difference": "n.d."}


def comparison_headers(report: ScalingReport, compact: bool = False) -> list[str]:
    names = list(dict.fromkeys(c.baseline for c in report.comparisons
                               if not (compact and c.oracle)))  # fmt: skip
    return ["experiment", *names]


def _compact_cell(c: Comparison) -> str:
    g = c.pooled
    if not math.isfinite(g.gap):
        return "n/a"
    return f"{SHORT_WORDS.get(c.word, '')} {g.gap:+.3f} [{g.low:+.3f}, {g.high:+.3f}]".strip()


def comparison_table(report: ScalingReport, compact: bool = False) -> list[list[str]]:
    """One row per experiment (by horizon, then size), one column per baseline; compact
    (the terminal): no oracle, "loses +0.012 [+0.003, +0.021]" cells."""
    names = comparison_headers(report, compact)[1:]
    rows = sorted((r for r in report.rows if r.comparisons),
                  key=lambda r: (r.result.horizon, r.result.best.n_params if r.result.best else 0))  # fmt: skip
    out = []
    for row in rows:
        cells = [row.result.name]
        for name in names:
            c = row.comparison(name)
            cells.append("-" if c is None else _compact_cell(c) if compact else verdict_text(c))
        out.append(cells)
    return out


def fit_source_text(report: ScalingReport) -> str:
    if report.fit_source == "test":
        o = report.options
        return (
            f"the test BCE of each retrained run (top {o.top_k} configurations x {o.seeds} "
            "seed(s) x each walk-forward test period, per experiment; each run trained on "
            "everything before its period's test block and tested once on it)"
        )
    return (
        "the best validation BCE of each experiment's top configurations: biased low by "
        "the search itself; retrain (without --no-retrain) for an honest trend"
    )


def markdown_table(headers: Sequence[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _comparison_notes(report: ScalingReport) -> list[str]:
    tested = [c for c in report.comparisons if not c.oracle]
    if not tested:
        return []
    c = tested[0]
    return [
        "",
        f"- each cell: test BCE of the experiment's runs minus the baseline's, mean over "
        f"test windows pooled over the periods (negative: the model is better), with its "
        f"interval. {c.holm_m} comparisons, Holm-adjusted at 5% family-wise: each interval "
        "is drawn at its Holm level, and 'beats' / 'loses to' is said only where it "
        "excludes 0. Test: paired over test windows, variance from batch means of at least "
        "max(10 h, 30) days within each period plus the spread of the runs "
        "(engine/report/compare.py). The oracle is a reference (95%, not tested).",
        "- ROC-AUC is described, not tested; per-period words are in comparisons.csv.",
    ]


def markdown(report: ScalingReport, figures: Sequence[str] = ()) -> str:
    lines = [
        f"# Scaling report: {report.campaign}",
        "",
        f"- created: {report.created}; storage: {report.storage}",
        f"- values: {fit_source_text(report)}",
        "",
        "## What this campaign can support",
        "",
        *[f"- {line}" for line in (report.adequacy.lines() if report.adequacy else [])],
        "",
        "## Headline",
        "",
        *([f"- {line}" for line in report.headline] or ["- nothing to report"]),
    ]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{name}]({name})" for name in figures]
    lines += ["", "## Trend per decade of parameters", "", *markdown_table(TREND_HEADERS,
              trend_table(report))]  # fmt: skip
    first = next((t.trend for t in report.trends if t.trend.df), None)
    if first is not None:
        lines += ["", f"- interval: {trend_test(first)} (engine/report/trend.py); exponent "
                  "of a * N^-alpha + c only where 5+ sizes determine it (its profile "
                  "interval inside (0, 2) and a floor c >= 0)."]  # fmt: skip
    if report.differences:
        lines += ["", *[f"- {say(DifferenceFact(d))}" for d in report.differences]]
    if report.comparisons:
        lines += ["", "## Experiments against each baseline (test BCE gap)", "",
                  *markdown_table(comparison_headers(report), comparison_table(report)),
                  *_comparison_notes(report)]  # fmt: skip
    lines += [
        "",
        "## Test scores of the retrained runs (mean ± sd over configurations x seeds x periods)",
        "",
        *markdown_table(HOLDOUT_HEADERS, holdout_table(report)),
    ]
    if any(row.baselines for row in report.rows):
        lines += ["", "## Baselines per test period", "",
                  *markdown_table(BASELINE_HEADERS, baseline_table(report)), "",
                  "- fitted on the period's training and early-stopping windows (the "
                  "models' data); precision/recall of the logistic regression, from a fit on "
                  "the training windows only, are in baselines.csv."]  # fmt: skip
    lines += periods_markdown(report)
    lines += ["", "## Configurations retrained (top trials of each search, ranked by its "
              "objective)", "", *markdown_table(CONFIG_HEADERS, config_table(report))]  # fmt: skip
    lines += splits_markdown(report)
    drift = [f"- {say(fact)}" for fact in report.drift]
    if drift:
        lines += ["", "## Label rates per test period", "", *drift]
    problems = [f"- {row.result.name}: {row.error}" for row in report.rows if row.error]
    notes = [f"- {row.result.name}: {row.note}" for row in report.rows if row.note]
    notes += [f"- {row.result.name}: {note}" for row in report.rows for note in row.result.notes]
    warnings = [f"- {warning}" for warning in report.warnings]
    if problems or notes or warnings:
        lines += ["", "## Problems", "", *warnings, *problems, *notes]
    lines += ["", "## Studies", ""]
    for row in report.rows:
        exp = row.result
        retrain = f", retrain study `{row.retrain_study}`" if row.retrain_study else ""
        lines.append(f"- {exp.name}: study `{exp.study_name}`, {exp.state}, "
                     f"{exp.n_complete}/{exp.n_trials} complete{retrain}")  # fmt: skip
    return "\n".join(lines) + "\n"


def versus_lines(report: ScalingReport) -> list[str]:
    """One sentence per experiment and baseline (report.json and the terminal)."""
    return [say(VersusFact(c)) for c in report.comparisons]
