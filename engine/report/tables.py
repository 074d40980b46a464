"""The report as files: markdown for people, CSV and JSON for tools.

Every number carries where it came from: the search columns name the Optuna trial
number in the experiment's study, the test columns the trial numbers of the seeds in
`<study>/retrain`. The terminal tables (hpotui/commands/report.py) use the same
`search_table` and `holdout_table` as the markdown, so the two cannot drift.

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
from engine.report.baselines import CONSTANT_PRIOR, LOGISTIC
from engine.report.build import SUMMARY_METRICS, ExperimentRow, ScalingReport, report_dict
from engine.report.splits import splits_markdown

SEARCH_HEADERS = (
    "experiment",
    "budget",
    "h",
    "search trial",
    "val BCE (search)",
    "architecture",
    "params",
    "retrain trials",
)
HOLDOUT_HEADERS = (
    "experiment",
    "test BCE",
    "ROC-AUC",
    "PR-AUC",
    "precision@thr",
    "recall@thr",
    "prior BCE",
    "logreg BCE",
    "logreg AUC",
)


def report_dir(campaign: str) -> Path:
    return paths.outputs_dir() / campaign / "report"


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def _mean_sd(row: ExperimentRow, metric: str) -> str:
    mean, sd = row.metric(metric)
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.4f} ± {sd:.4f}" if math.isfinite(sd) else f"{mean:.4f}"


def _baseline_metric(row: ExperimentRow, name: str, metric: str) -> float | None:
    baseline = row.baseline(name)
    return None if baseline is None else baseline.test_metrics.get(metric)


def search_table(report: ScalingReport) -> list[list[str]]:
    """Per experiment, in the order of SEARCH_HEADERS: what the search found."""
    out: list[list[str]] = []
    for row in report.rows:
        exp, best = row.result, row.result.best
        out.append(
            [
                exp.name,
                exp.budget,
                str(exp.horizon),
                "-" if best is None else f"#{best.number}",
                "-" if best is None else _num(best.value),
                "-" if best is None else best.architecture.label,
                "-" if best is None else f"{best.n_params:,}",
                ", ".join(f"#{r.trial_number}" for r in row.seeds) or "-",
            ]
        )
    return out


def holdout_table(report: ScalingReport) -> list[list[str]]:
    """Per experiment, in the order of HOLDOUT_HEADERS: the retrained seeds on the test
    split (mean ± standard deviation) and the baselines on the same split."""
    return [
        [
            row.result.name,
            _mean_sd(row, "bce"),
            _mean_sd(row, "roc_auc"),
            _mean_sd(row, "pr_auc"),
            _mean_sd(row, "precision_at_best"),
            _mean_sd(row, "recall_at_best"),
            _num(_baseline_metric(row, CONSTANT_PRIOR, "bce")),
            _num(_baseline_metric(row, LOGISTIC, "bce")),
            _num(_baseline_metric(row, LOGISTIC, "roc_auc")),
        ]
        for row in report.rows
    ]


def _markdown_table(headers: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def fit_lines(report: ScalingReport) -> list[str]:
    """One line per horizon: the verdict of its power-law fit."""
    return [f"h{h}: {fit.summary()}" for h, fit in sorted(report.fits.items())]


def fit_source_text(report: ScalingReport) -> str:
    if report.fit_source == "test":
        return (
            f"each retrained seed's test BCE ({report.options.seeds} seed(s) per experiment, "
            "train+validation, untouched test split)"
        )
    return (
        "the best validation BCE of each experiment's search: biased low by the search "
        "itself; retrain (without --no-retrain) for an honest fit"
    )


def markdown(report: ScalingReport) -> str:
    lines = [
        f"# Scaling report: {report.campaign}",
        "",
        f"- created: {report.created}",
        f"- storage: {report.storage}",
        f"- fit of loss(N) = a * N^(-alpha) + c per horizon, on {fit_source_text(report)}",
        f"- interval: {round(report.options.level * 100)}% bootstrap "
        f"({report.options.n_boot} replicates of the fitted curve plus resampled residuals)",
        "",
        "## Does loss fall as a power law in parameter count?",
        "",
    ]
    lines += [f"- {line}" for line in fit_lines(report)] or ["- no experiments"]
    lines += ["", "| horizon | points | sizes | alpha | interval | a | c | rmse | verdict |"]
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for h, fit in sorted(report.fits.items()):
        lines.append(
            f"| {h} | {fit.n_points} | {fit.n_sizes} | {_num(fit.alpha, 3)} | "
            f"{fit.interval_text()} | {_num(fit.a, 4)} | {_num(fit.c, 4)} | "
            f"{_num(fit.rmse, 4)} | {fit.verdict} |"
        )
    lines += ["", "## Search: best trial per experiment", ""]
    lines += _markdown_table(SEARCH_HEADERS, search_table(report))
    lines += [
        "",
        "- search trial / val BCE: the best complete trial of the experiment's Optuna study "
        "(trial number) and its validation BCE, biased low by the search that picked it.",
        "- retrain trials: trial numbers in the study `<study>/retrain`, one per seed.",
        "",
        "## Test split: retrained seeds and baselines",
        "",
    ]
    lines += _markdown_table(HOLDOUT_HEADERS, holdout_table(report))
    lines += [
        "",
        "- model columns: mean ± standard deviation over the retrained seeds; precision and "
        "recall at the best-F1 threshold chosen on validation during the search.",
        f"- prior BCE: always predicting the train+validation label rate. logreg: {LOGISTIC} "
        "on the last day of each window (normalized features), fitted on train+validation.",
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
    writer.writerows(rows)
    return buffer.getvalue()


def experiments_csv(report: ScalingReport) -> str:
    header = [
        "experiment",
        "study",
        "budget",
        "horizon",
        "state",
        "n_complete",
        "n_trials",
        "search_trial",
        "val_bce_search",
        "d_model",
        "n_layers",
        "n_heads",
        "d_ff",
        "n_params",
        "retrain_study",
        "retrain_trials",
        "n_seeds",
    ]
    for metric in SUMMARY_METRICS:
        header += [f"test_{metric}_mean", f"test_{metric}_sd"]
    header += ["prior_bce", "logreg_bce", "logreg_roc_auc", "logreg_pr_auc", "error"]
    rows = []
    for row in report.rows:
        exp, best = row.result, row.result.best
        arch = best.architecture.to_dict() if best else {}
        cells: list[Any] = [
            exp.name,
            exp.study_name,
            exp.budget,
            exp.horizon,
            exp.state,
            exp.n_complete,
            exp.n_trials,
            best.number if best else "",
            best.value if best else "",
            arch.get("d_model", ""),
            arch.get("n_layers", ""),
            arch.get("n_heads", ""),
            arch.get("d_ff", ""),
            best.n_params if best else "",
            row.retrain_study or "",
            " ".join(str(r.trial_number) for r in row.seeds),
            len(row.seeds),
        ]
        for metric in SUMMARY_METRICS:
            cells += list(row.metric(metric))
        cells += [
            _baseline_metric(row, CONSTANT_PRIOR, "bce"),
            _baseline_metric(row, LOGISTIC, "bce"),
            _baseline_metric(row, LOGISTIC, "roc_auc"),
            _baseline_metric(row, LOGISTIC, "pr_auc"),
            row.error,
        ]
        rows.append(["" if c is None else c for c in cells])
    return _csv(header, rows)


def seeds_csv(report: ScalingReport) -> str:
    keys = sorted({k for row in report.rows for r in row.seeds for k in r.test_metrics})
    header = ["experiment", "retrain_study", "trial", "seed", "source_trial", "epochs"]
    header += ["threshold", "duration_s", *[f"test_{k}" for k in keys]]
    rows = [
        [
            row.result.name,
            row.retrain_study,
            r.trial_number,
            r.seed,
            row.result.best.number if row.result.best else "",
            r.epochs,
            r.threshold,
            round(r.duration_s, 3),
            *[r.test_metrics.get(k, "") for k in keys],
        ]
        for row in report.rows
        for r in row.seeds
    ]
    return _csv(header, rows)


def fits_csv(report: ScalingReport) -> str:
    header = ["horizon", "source", "n_points", "n_sizes", "a", "alpha", "alpha_low"]
    header += ["alpha_high", "level", "c", "rmse", "at_bound", "verdict"]
    rows = [
        [
            h,
            report.fit_source,
            f.n_points,
            f.n_sizes,
            f.a,
            f.alpha,
            f.alpha_low,
            f.alpha_high,
            f.level,
            f.c,
            f.rmse,
            f.at_bound,
            f.verdict,
        ]
        for h, f in sorted(report.fits.items())
    ]
    return _csv(header, [["" if c is None else c for c in r] for r in rows])


def baselines_csv(report: ScalingReport) -> str:
    keys = ("bce", "roc_auc", "pr_auc", "precision_at_best", "recall_at_best", "label_rate")
    header = ["experiment", "horizon", "baseline", "features", "fitted_on", "fitted_windows"]
    header += [f"test_{k}" for k in keys]
    rows = [
        [
            row.result.name,
            row.result.horizon,
            b.name,
            b.features,
            b.fitted_on,
            b.fitted_windows,
            *[b.test_metrics.get(k, "") for k in keys],
        ]
        for row in report.rows
        for b in row.baselines
    ]
    return _csv(header, rows)


def write_report(report: ScalingReport, directory: Path | None = None) -> list[Path]:
    """Write report.md, report.json and the CSV tables; returns the paths written."""
    out = directory or report_dir(report.campaign)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "report.md": markdown(report),
        "experiments.csv": experiments_csv(report),
        "seeds.csv": seeds_csv(report),
        "fits.csv": fits_csv(report),
        "baselines.csv": baselines_csv(report),
        "report.json": json.dumps(report_dict(report), indent=2, default=str) + "\n",
    }
    written = []
    for name, text in files.items():
        path = out / name
        temporary = path.with_name(f".{name}.{os.getpid()}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
        written.append(path)
    return written
