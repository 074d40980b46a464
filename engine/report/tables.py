"""The report as files: markdown for people, CSV and JSON for tools.

Each step of the pipeline (engine/report/build.py) has its table under
outputs/<campaign>/report/: configurations.csv (collect), runs.csv (retrain),
baselines.csv, comparisons.csv, fits.csv; experiments.csv sums each experiment up,
report.md and report.json hold everything with the sentences. Every number carries where
it came from: search trial numbers in the experiment's study, run trial numbers in
`<study>/retrain`. The terminal tables (hpotui/commands/report.py) use the same
functions as the markdown, so the two cannot drift.

Undefined numbers are "n/a" (never 0); a mean over runs says how many runs had the
metric defined when some did not.

Files are written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from engine import paths
from engine.report.baselines import Baseline
from engine.report.build import (
    MARGIN,
    SUMMARY_METRICS,
    ExperimentRow,
    ScalingReport,
    report_dict,
    versus_lines,
)
from engine.report.powerlaw import PowerLawFit, alpha_text
from engine.report.splits import splits_markdown

CONFIG_HEADERS = (
    "experiment",
    "h",
    "rank",
    "search trial",
    "val BCE (search)",
    "architecture",
    "params",
    "best epoch",
    "retrain trials",
)
HOLDOUT_HEADERS = ("experiment", "runs", "test BCE", "ROC-AUC", "PR-AUC", "Brier")
BASELINE_HEADERS = (
    "h",
    "baseline",
    "fitted on",
    "test BCE",
    "ROC-AUC",
    "PR-AUC",
    "Brier",
    "precision",
    "recall",
    "predicted +",
)
FIT_HEADERS = ("h", "of", "runs", "sizes", "configs", "alpha", "interval", "a", "c", "verdict")


def report_dir(campaign: str) -> Path:
    return paths.outputs_dir() / campaign / "report"


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
            runs = [f"#{r.trial_number}" for r in row.runs if r.source_trial == t.number]
            out.append(
                [
                    exp.name,
                    str(exp.horizon),
                    str(rank),
                    f"#{t.number}",
                    num(t.val_bce),
                    t.architecture.label,
                    f"{t.n_params:,}",
                    "n/a" if t.best_epoch is None else str(t.best_epoch),
                    ", ".join(runs) or "-",
                ]
            )
    return out


def holdout_table(report: ScalingReport) -> list[list[str]]:
    """Per experiment: threshold-free test scores over its runs (configurations x seeds)."""
    return [
        [row.result.name, str(len(row.runs)), *(mean_sd(row, m) for m in SUMMARY_METRICS)]
        for row in report.rows
    ]


def _baseline_cells(horizon: int, b: Baseline) -> list[str]:
    m = b.test_metrics
    name = f"{b.name} (oracle)" if b.oracle else b.name
    return [
        str(horizon),
        name,
        b.fitted_on,
        *(num(m.get(k)) for k in SUMMARY_METRICS),
        num(m.get("precision"), 3),
        num(m.get("recall"), 3),
        num(m.get("predicted_positive_share"), 3),
    ]


def baseline_table(report: ScalingReport) -> list[list[str]]:
    """Each horizon's baselines once (the experiments of a horizon share its test split;
    data_spec_warnings says when they do not)."""
    out: list[list[str]] = []
    seen: set[int] = set()
    for row in report.rows:
        if row.baselines and row.result.horizon not in seen:
            seen.add(row.result.horizon)
            out += [_baseline_cells(row.result.horizon, b) for b in row.baselines]
    return out


def _fit_cells(horizon: int, of: str, fit: PowerLawFit) -> list[str]:
    if fit.verdict == "too few sizes":  # no line through fewer than MIN_SIZES sizes
        counts = [str(fit.n_points), str(fit.n_sizes), str(fit.n_configs)]
        return [str(horizon), of, *counts, "n/a", "n/a", "n/a", "n/a", fit.verdict]
    return [
        str(horizon),
        of,
        str(fit.n_points),
        str(fit.n_sizes),
        str(fit.n_configs),
        alpha_text(fit.alpha),
        fit.interval_text(),
        num(fit.a, 4) if not fit.at_bound else "n/a",
        num(fit.c, 4),
        fit.verdict,
    ]


def fit_table(report: ScalingReport) -> list[list[str]]:
    of = "test BCE" if report.fit_source == "test" else "val BCE (biased)"
    rows = [_fit_cells(h, of, f) for h, f in sorted(report.fits.items())]
    return rows + [_fit_cells(h, MARGIN, f) for h, f in sorted(report.margin_fits.items())]


def fit_source_text(report: ScalingReport) -> str:
    if report.fit_source == "test":
        return (
            f"the test BCE of each retrained run (top {report.options.top_k} configurations "
            f"x {report.options.seeds} seed(s) per experiment, trained on train+validation, "
            "tested once on the untouched test split)"
        )
    return (
        "the best validation BCE of each experiment's top configurations: biased low by "
        "the search itself; retrain (without --no-retrain) for an honest fit"
    )


def _markdown_table(headers: Sequence[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def markdown(report: ScalingReport) -> str:
    pct = round(report.options.level * 100)
    lines = [
        f"# Scaling report: {report.campaign}",
        "",
        f"- created: {report.created}",
        f"- storage: {report.storage}",
        f"- fit of loss(N) = a * N^(-alpha) + c per horizon, on {fit_source_text(report)}",
        f"- interval: {pct}% hierarchical bootstrap ({report.options.n_boot} replicates: "
        "residuals resampled per size, per configuration within size, per seed within "
        "configuration)",
        "",
        "## Headline",
        "",
        *([f"- {line}" for line in report.headline] or ["- nothing to report"]),
        "",
        "## Power-law fits",
        "",
        *_markdown_table(FIT_HEADERS, fit_table(report)),
        "",
        "## Models against each baseline (test split)",
        "",
        *([f"- {line}" for line in versus_lines(report)] or ["- no baselines computed"]),
        "",
        "## Test split: retrained runs (mean ± sd over configurations x seeds)",
        "",
        *_markdown_table(HOLDOUT_HEADERS, holdout_table(report)),
        "",
        "- threshold-free scores only: the retrained models trained on the validation "
        "windows, so no held-out data is left to choose them a threshold.",
        "",
        "## Baselines on the same test windows",
        "",
        *_markdown_table(BASELINE_HEADERS, baseline_table(report)),
        "",
        "- constant prior: the train+validation label rate. persistence: the label of day "
        "t-h, the latest whose horizon has closed when predicting from day t, as the "
        "train+validation rate after such a label. logistic regression: the last day's "
        "normalized features, fitted on train+validation; its precision / recall / "
        "predicted-positive share from the same regression fitted on train only, at the "
        "best-F1 threshold chosen on validation. oracle constant: the test label rate "
        "itself (no model can know it).",
        "",
        "## Configurations retrained (top trials of each search)",
        "",
        *_markdown_table(CONFIG_HEADERS, config_table(report)),
        "",
        "- search trial / val BCE: a trial of the experiment's Optuna study and its "
        "validation BCE, biased low by the search that picked it; retrain trials: trial "
        "numbers in `<study>/retrain`, one per seed.",
    ]
    lines += splits_markdown(report)
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
        lines.append(
            f"- {exp.name}: study `{exp.study_name}`, {exp.state}, "
            f"{exp.n_complete}/{exp.n_trials} complete{retrain}"
        )
    return "\n".join(lines) + "\n"


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if c is None else c for c in r] for r in rows])
    return buffer.getvalue()


def experiments_csv(report: ScalingReport) -> str:
    header = ["experiment", "study", "budget", "horizon", "state", "n_complete", "n_trials"]
    header += ["best_trial", "val_bce_search", "top_trials", "retrain_study", "n_runs"]
    for metric in SUMMARY_METRICS:
        header += [f"test_{metric}_mean", f"test_{metric}_sd"]
    header += ["error"]
    rows = []
    for row in report.rows:
        exp, best = row.result, row.result.best
        cells: list[Any] = [
            exp.name, exp.study_name, exp.budget, exp.horizon, exp.state, exp.n_complete,
            exp.n_trials, best.number if best else "", best.val_bce if best else "",
            " ".join(str(t.number) for t in exp.top), row.retrain_study or "", len(row.runs),
        ]  # fmt: skip
        for metric in SUMMARY_METRICS:
            cells += list(row.metric(metric))
        rows.append([*cells, row.error])
    return _csv(header, rows)


def configurations_csv(report: ScalingReport) -> str:
    header = ["experiment", "horizon", "rank", "search_trial", "val_bce_search", "d_model"]
    header += ["n_layers", "n_heads", "d_ff", "n_params", "best_epoch"]
    rows = []
    for row in report.rows:
        for rank, t in enumerate(row.result.top, start=1):
            arch = t.architecture.to_dict()
            rows.append(
                [row.result.name, row.result.horizon, rank, t.number, t.val_bce,
                 arch.get("d_model"), arch.get("n_layers"), arch.get("n_heads"),
                 arch.get("d_ff"), t.n_params, t.best_epoch]
            )  # fmt: skip
    return _csv(header, rows)


def runs_csv(report: ScalingReport) -> str:
    keys = sorted({k for row in report.rows for r in row.runs for k in r.test_metrics})
    header = ["experiment", "retrain_study", "trial", "source_trial", "seed", "n_params"]
    header += ["epochs", "duration_s", *[f"test_{k}" for k in keys]]
    rows = [
        [row.result.name, row.retrain_study, r.trial_number, r.source_trial, r.seed,
         r.n_params, r.epochs, round(r.duration_s, 3), *[r.test_metrics.get(k) for k in keys]]
        for row in report.rows
        for r in row.runs
    ]  # fmt: skip
    return _csv(header, rows)


def fits_csv(report: ScalingReport) -> str:
    header = ["horizon", "of", "source", "n_points", "n_sizes", "n_configs", "a", "alpha"]
    header += ["alpha_low", "alpha_high", "level", "c", "rmse", "at_bound", "verdict"]
    fits = [("loss", h, f) for h, f in sorted(report.fits.items())]
    fits += [("margin_over_logistic", h, f) for h, f in sorted(report.margin_fits.items())]
    rows = [
        [h, of, report.fit_source, f.n_points, f.n_sizes, f.n_configs, f.a, f.alpha,
         f.alpha_low, f.alpha_high, f.level, f.c, f.rmse, f.at_bound, f.verdict]
        for of, h, f in fits
    ]  # fmt: skip
    return _csv(header, rows)


def baselines_csv(report: ScalingReport) -> str:
    keys = (*SUMMARY_METRICS, "precision", "recall", "predicted_positive_share", "label_rate")
    header = ["experiment", "horizon", "baseline", "oracle", "features", "fitted_on"]
    header += ["fitted_windows", *[f"test_{k}" for k in keys]]
    rows = [
        [row.result.name, row.result.horizon, b.name, b.oracle, b.features, b.fitted_on,
         b.fitted_windows, *[b.test_metrics.get(k) for k in keys]]
        for row in report.rows
        for b in row.baselines
    ]  # fmt: skip
    return _csv(header, rows)


def comparisons_csv(report: ScalingReport) -> str:
    header = ["experiment", "baseline", "oracle", "metric", "baseline_value", "model_mean"]
    header += ["model_sd", "n_runs", "n_better", "outcome"]
    rows = [
        [c.experiment, c.baseline, c.oracle, c.metric, c.baseline_value, c.model_mean,
         c.model_sd, c.n_runs, c.n_better, c.outcome]
        for row in report.rows
        for c in row.comparisons
    ]  # fmt: skip
    return _csv(header, rows)


def write_report(report: ScalingReport, directory: Path | None = None) -> list[Path]:
    """Write report.md, report.json and each step's CSV table; returns the paths."""
    out = directory or report_dir(report.campaign)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "report.md": markdown(report),
        "experiments.csv": experiments_csv(report),
        "configurations.csv": configurations_csv(report),
        "runs.csv": runs_csv(report),
        "baselines.csv": baselines_csv(report),
        "comparisons.csv": comparisons_csv(report),
        "fits.csv": fits_csv(report),
        "report.json": report_json(report),
    }
    written = []
    for name, text in files.items():
        path = out / name
        temporary = path.with_name(f".{name}.{os.getpid()}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
        written.append(path)
    return written


def report_json(report: ScalingReport) -> str:
    """report.json's text: NaN and infinities as null, so any JSON reader takes it."""
    return json.dumps(_nulls(report_dict(report)), indent=2, default=str) + "\n"


def _nulls(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nulls(v) for v in value]
    return value
