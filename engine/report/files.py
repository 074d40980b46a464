"""The report as files under outputs/<campaign>/report/: one table per pipeline step,
the figures, report.md for people and report.json for tools.

| file | step |
|---|---|
| configurations.csv | collect |
| runs.csv | retrain (one row per configuration x seed x period) |
| baselines.csv | baselines (per period) |
| comparisons.csv | compare (pooled and per period, with Holm levels) |
| trends.csv, trend_differences.csv | trend |
| experiments.csv | all: one row per experiment |
| scaling_h<H>.png/.svg, gap_logistic.png/.svg | figures |
| report.md, report.json | words |

Every number carries where it came from: search trial numbers in the experiment's study,
run trial numbers in `<study>/retrain`. Each file is written to a temporary name and
renamed, so a crash never leaves half a file.
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
from engine.report.build import SUMMARY_METRICS, ExperimentRow, ScalingReport
from engine.report.splits import splits_json
from engine.report.tables import markdown, versus_lines
from engine.report.words import DifferenceFact, say


def report_dir(campaign: str) -> Path:
    return paths.outputs_dir() / campaign / "report"


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
    header = ["experiment", "horizon", "rank", "search_trial", "objective", "objective_value"]
    header += ["val_bce_search", "d_model", "n_layers", "n_heads", "d_ff", "n_params"]
    header += ["best_epoch"]
    rows = []
    for row in report.rows:
        for rank, t in enumerate(row.result.top, start=1):
            arch = t.architecture.to_dict()
            rows.append(
                [row.result.name, row.result.horizon, rank, t.number, row.result.config.objective,
                 t.value, t.val_bce, arch.get("d_model"), arch.get("n_layers"),
                 arch.get("n_heads"), arch.get("d_ff"), t.n_params, t.best_epoch]
            )  # fmt: skip
    return _csv(header, rows)


def runs_csv(report: ScalingReport) -> str:
    keys = sorted({k for row in report.rows for r in row.runs for k in r.test_metrics})
    header = ["experiment", "retrain_study", "trial", "source_trial", "seed", "period"]
    header += ["n_params", "epochs", "best_epoch", "duration_s", *[f"test_{k}" for k in keys]]
    rows = [
        [row.result.name, row.retrain_study, r.trial_number, r.source_trial, r.seed, r.period,
         r.n_params, r.epochs, r.best_epoch, round(r.duration_s, 3),
         *[r.test_metrics.get(k) for k in keys]]
        for row in report.rows
        for r in row.runs
    ]  # fmt: skip
    return _csv(header, rows)


def baselines_csv(report: ScalingReport) -> str:
    keys = (*SUMMARY_METRICS, "label_rate", "prior", "precision_train_fit",
            "recall_train_fit", "predicted_positive_share_train_fit")  # fmt: skip
    header = ["experiment", "horizon", "period", "baseline", "oracle", "features", "fitted_on"]
    header += ["fitted_windows", *[f"test_{k}" for k in keys]]
    rows = [
        [row.result.name, row.result.horizon, b.period, b.name, b.oracle, b.features,
         b.fitted_on, b.fitted_windows, *[b.test_metrics.get(k) for k in keys]]
        for row in report.rows
        for b in row.baselines
    ]  # fmt: skip
    return _csv(header, rows)


def comparisons_csv(report: ScalingReport) -> str:
    header = ["experiment", "baseline", "oracle", "horizon", "size", "period", "gap", "se"]
    header += ["low", "high", "interval_level", "p_value", "p_holm", "holm_m", "word"]
    header += ["test_windows", "batches", "runs", "model_roc_auc", "baseline_roc_auc"]
    rows = []
    for c in report.comparisons:
        scopes = [("all", c.pooled)] + [(str(k), g) for k, g in enumerate(c.periods, 1)]
        for scope, g in scopes:
            word = "reference" if c.oracle else g.word
            rows.append([c.experiment, c.baseline, c.oracle, c.horizon, c.size, scope, g.gap,
                         g.se, g.low, g.high, 1 - g.level_alpha, g.p_value, g.p_holm, c.holm_m,
                         word, g.n_windows, g.batches, g.n_runs, c.model_auc,
                         c.baseline_auc])  # fmt: skip
    return _csv(header, rows)


def trends_csv(report: ScalingReport) -> str:
    header = ["factor", "level", "period", "n_sizes", "n_configs", "n_runs", "slope_per_decade"]
    header += ["low", "high", "level_pct", "se", "df", "residual_var", "within_var", "verdict"]
    header += ["min_detectable_80", "exponent", "exponent_low", "exponent_high", "floor_c"]
    rows = []
    for t in report.trends:
        tr = t.trend
        e = report.exponents.get(t.level) if t.factor == "horizon" and not t.period else None
        shown = e if e is not None and e.determined else None
        rows.append([t.factor, t.level, t.period or "all", tr.n_sizes, tr.n_configs, tr.n_runs,
                     tr.slope, tr.low, tr.high, tr.level, tr.se, tr.df, tr.residual_var,
                     tr.within_var, tr.verdict, tr.min_detectable,
                     shown.alpha if shown else ("not determined" if e else ""),
                     shown.low if shown else "", shown.high if shown else "",
                     shown.c if shown else ""])  # fmt: skip
    return _csv(header, rows)


def differences_csv(report: ScalingReport) -> str:
    header = ["a", "b", "difference_per_decade", "low", "high", "level", "df", "paired"]
    header += ["n_sizes", "verdict"]
    rows = [[d.a, d.b, d.difference, d.low, d.high, d.level, d.df, d.paired, d.n_sizes,
             d.verdict] for d in report.differences]  # fmt: skip
    return _csv(header, rows)


def report_dict(report: ScalingReport, figures: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON-ready form of the whole report (written as report.json)."""
    return {
        "campaign": report.campaign,
        "storage": report.storage,
        "created": report.created,
        "seeds": report.options.seeds,
        "top_k": report.options.top_k,
        "fit_source": report.fit_source,
        "adequacy": {**report.adequacy.to_dict(), "lines": report.adequacy.lines()}
        if report.adequacy else None,
        "headline": report.headline,
        "figures": list(figures),
        "trends": [t.to_dict() for t in report.trends],
        "exponents": {str(h): e.to_dict() for h, e in report.exponents.items()},
        "trend_differences": [{**d.to_dict(), "sentence": say(DifferenceFact(d))}
                              for d in report.differences],
        "comparisons": [c.to_dict() for c in report.comparisons],
        "versus": versus_lines(report),
        "warnings": report.warnings,
        "splits": splits_json(report),
        "periods": report.periods,
        "drift": [{"horizon": d.horizon, "period": d.period, "fitted_rate": d.fitted_rate,
                   "test_rate": d.test_rate, "drift": d.drift, "nats": d.nats,
                   "sentence": say(d)} for d in report.drift],
        "experiments": [_experiment_dict(row) for row in report.rows],
    }  # fmt: skip


def _experiment_dict(row: ExperimentRow) -> dict[str, Any]:
    exp = row.result
    return {
        "experiment": exp.name, "study": exp.study_name, "budget": exp.budget,
        "horizon": exp.horizon, "task": exp.config.task, "state": exp.state,
        "n_complete": exp.n_complete, "n_trials": exp.n_trials,
        "objective": exp.config.objective,
        "top": [{"trial": t.number, "value": t.value, "val_bce": t.val_bce,
                 "architecture": t.architecture.to_dict(), "n_params": t.n_params,
                 "best_epoch": t.best_epoch} for t in exp.top],
        "retrain_study": row.retrain_study,
        "runs": [{"source_trial": r.source_trial, "seed": r.seed, "period": r.period,
                  "trial": r.trial_number, "n_params": r.n_params, "epochs": r.epochs,
                  "test_metrics": r.test_metrics} for r in row.runs],
        "baselines": [b.to_dict() for b in row.baselines],
        "error": row.error, "note": row.note,
    }  # fmt: skip


def write_report(
    report: ScalingReport, directory: Path | None = None, *, figures: bool = True
) -> list[Path]:
    """Write every step's table, the figures, report.md and report.json; returns the
    paths (report.md first)."""
    out = directory or report_dir(report.campaign)
    out.mkdir(parents=True, exist_ok=True)
    drawn: list[Path] = []
    if figures:
        from engine.report.figures import write_figures

        drawn = write_figures(report, out)
    pngs = [p.name for p in drawn if p.suffix == ".png"]
    files = {
        "report.md": markdown(report, pngs),
        "experiments.csv": experiments_csv(report),
        "configurations.csv": configurations_csv(report),
        "runs.csv": runs_csv(report),
        "baselines.csv": baselines_csv(report),
        "comparisons.csv": comparisons_csv(report),
        "trends.csv": trends_csv(report),
        "trend_differences.csv": differences_csv(report),
        "report.json": report_json(report, pngs),
    }
    written = []
    for name, text in files.items():
        path = out / name
        temporary = path.with_name(f".{name}.{os.getpid()}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
        written.append(path)
    return written + drawn


def report_json(report: ScalingReport, figures: Sequence[str] = ()) -> str:
    """report.json's text: NaN and infinities as null, so any JSON reader takes it."""
    return json.dumps(_nulls(report_dict(report, figures)), indent=2, default=str) + "\n"


def _nulls(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _nulls(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nulls(v) for v in value]
    return value
