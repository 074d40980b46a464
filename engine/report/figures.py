"""The report's figures (matplotlib, Agg backend: no display needed), written next to
report.md, which embeds them.

- `scaling_h<H>.png` / `.svg` per horizon: test BCE against parameters (log), one panel
  for all test periods together and one per period. Every run is a point (coloured by
  period); each size's mean is a black marker with its interval (t over its
  configurations); the fitted trend per decade is a line, labelled with its slope,
  interval and verdict; each baseline is a horizontal line with its 95% band over test
  days (batch means, as the comparisons use). The legend sits below the panels, never
  on the data.
- `gap_logistic.png` / `.svg`: the gap of each experiment's test BCE to logistic
  regression over horizon x size (`heatmap`, for any two factors), each cell annotated
  with the gap and its word ("beats" / "loses" where the Holm-adjusted interval excludes
  0, "n.d." where it does not).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.report.analysis import ALL_PERIODS, points
from engine.report.baselines import LOGISTIC, Baseline
from engine.report.compare import batch_means, window_bce
from engine.report.trend import Point, pivot, size_means, trend

PERIOD_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
BASELINE_STYLES = {
    "constant prior": ("#7f7f7f", "--"),
    "persistence": ("#bcbd22", "-."),
    "logistic regression": ("#d62728", "-"),
    "oracle constant": ("#17becf", ":"),
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _baseline_band(per: Sequence[Baseline], horizon: int) -> tuple[float, float]:
    """(mean test BCE over the periods' windows, half-width of its 95% interval)."""
    series = [window_bce(np.asarray(b.test_probs), np.asarray(b.test_labels))
              for b in per if b.test_probs]  # fmt: skip
    if not series:
        mean = float(np.mean([b.test_metrics.get("bce", math.nan) for b in per]))
        return mean, math.nan
    means = batch_means(series, horizon)
    pooled = float(np.concatenate(series).mean())
    if len(means) < 2:
        return pooled, math.nan
    from scipy import stats

    se = float(np.std(means, ddof=1) / math.sqrt(len(means)))
    return pooled, float(stats.t.ppf(0.975, len(means) - 1)) * se


def _panel(ax: Any, pts: list[Point], baselines: dict[str, list[Baseline]], horizon: int,
           title: str) -> None:  # fmt: skip
    from scipy import stats

    rng = np.random.default_rng(0)
    for p in pts:
        period = int(p.factors.get("period", 1))
        colour = PERIOD_COLOURS[(period - 1) % len(PERIOD_COLOURS)]
        ax.scatter(p.n_params * math.exp(rng.uniform(-0.04, 0.04)), p.value, s=9,
                   color=colour, alpha=0.55, linewidths=0, zorder=2)  # fmt: skip
    means = size_means(pts)
    for m in means:
        half = math.nan
        if m.n_configs > 1 and math.isfinite(m.within_var):
            half = float(stats.t.ppf(0.975, m.n_configs - 1)) * math.sqrt(m.within_var)
        ax.errorbar(10**m.log10_n, m.mean, yerr=None if math.isnan(half) else half, fmt="o",
                    color="black", markersize=5, capsize=3, zorder=4)  # fmt: skip
    t = trend(pts)
    if math.isfinite(t.slope) and means:
        xs = np.array([means[0].log10_n, means[-1].log10_n])
        x_bar = np.mean([m.log10_n for m in means])
        y_bar = np.mean([m.mean for m in means])
        ax.plot(10**xs, y_bar + t.slope * (xs - x_bar), color="black", lw=1.4, zorder=3,
                label=f"trend {t.slope:+.4f}/decade {t.interval_text()}: {t.verdict}")  # fmt: skip
    for name, per in baselines.items():
        colour, style = BASELINE_STYLES.get(name, ("#333333", "-"))
        mean, half = _baseline_band(per, horizon)
        if not math.isfinite(mean):
            continue
        ax.axhline(mean, color=colour, ls=style, lw=1.4, zorder=1, label=name)
        if math.isfinite(half):  # light: four bands may overlap, the points stay legible
            ax.axhspan(mean - half, mean + half, color=colour, alpha=0.06, lw=0, zorder=0)
    ax.set_xscale("log")
    ticks = [10**m.log10_n for m in means]
    ax.set_xticks(ticks, [_count(t) for t in ticks])
    ax.xaxis.set_minor_formatter(_blank())
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("parameters (mean of each size's configurations)")
    ax.grid(True, which="major", alpha=0.3)


def _count(n: float) -> str:
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}K" if n >= 1e3 else f"{n:.0f}"


def _blank() -> Any:
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def scaling_figure(report: Any, horizon: int, directory: Path) -> list[Path]:
    """scaling_h<H>.png and .svg (module doc); [] when the horizon has no points."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    rows = [r for r in report.rows if r.result.horizon == horizon]
    pts = points(rows, report.fit_source)
    if not pts:
        return []
    periods = sorted({int(p.factors.get("period", 0)) for p in pts} - {ALL_PERIODS})
    first_title = "all test periods" if report.fit_source == "test" else "search validation"
    panels: list[tuple[str, list[Point], int | None]] = [(first_title, pts, None)]
    if len(periods) > 1:
        panels += [(f"period {k}", [p for p in pts if p.factors.get("period") == k], k)
                   for k in periods]  # fmt: skip
    n_cols = min(len(panels), 2)
    n_rows = math.ceil(len(panels) / n_cols)
    fig, grid = plt.subplots(n_rows, n_cols, figsize=(5.2 * n_cols + 0.6, 3.6 * n_rows + 1.6),
                             sharey=True, squeeze=False)  # fmt: skip
    axes = [list(grid.ravel()[: len(panels)])]
    for spare in grid.ravel()[len(panels) :]:
        spare.set_visible(False)
    first = next((r for r in rows if r.baselines), None)
    for ax, (title, group, period) in zip(axes[0], panels, strict=True):
        chosen = [b for b in (first.baselines if first else [])
                  if period is None or b.period == period]  # fmt: skip
        by_name: dict[str, list[Baseline]] = {}
        for b in chosen:
            by_name.setdefault(b.name, []).append(b)
        _panel(ax, group, by_name, horizon, title)
    for ax in grid[:, 0]:
        ax.set_ylabel("test BCE" if report.fit_source == "test" else "validation BCE")
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels and not lab.startswith("trend"):
                handles.append(h)
                labels.append(lab)
    for k in periods if len(periods) > 1 else []:
        handles.append(Line2D([], [], marker="o", ls="", color=PERIOD_COLOURS[(k - 1) % 6]))
        labels.append(f"run, period {k}")
    handles.append(Line2D([], [], marker="o", ls="", color="black"))
    labels.append("size mean, 95% interval over its configurations")
    handles.append(Line2D([], [], lw=6, color="#999999", alpha=0.3))
    labels.append(
        "baseline band: 95% of its mean loss over test days (the models share those "
        "days: compare by the paired test, gap_logistic.png)"
    )
    for ax, (title, _, _) in zip(axes[0], panels, strict=True):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab.startswith("trend"):
                handles.append(h)
                labels.append(f"{title}: {lab}")
    fig.suptitle(f"h{horizon}: test BCE against model size (each point a retrained run)"
                 if report.fit_source == "test" else
                 f"h{horizon}: validation BCE of the top configurations (biased)", fontsize=11)  # fmt: skip
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    legend_inches = 0.19 * math.ceil(len(labels) / 2) + 0.15
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, legend_inches / height, 1, 1 - 0.45 / height))
    return _save(fig, directory / f"scaling_h{horizon}")


def heatmap(
    rows: Sequence[Hashable], cols: Sequence[Hashable], matrix: np.ndarray,
    notes: Mapping[tuple[Any, Any], str], title: str, colour_label: str, path: Path,
    axis_labels: tuple[str, str] = ("", ""), caption: str = "",
) -> list[Path]:  # fmt: skip
    """A diverging heatmap of any value over two factors, centred on 0, each cell
    annotated; NaN cells are left blank."""
    plt = _pyplot()
    finite = matrix[np.isfinite(matrix)]
    limit = float(np.max(np.abs(finite))) if len(finite) else 1.0
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2.6, 0.9 * len(rows) + 1.8))
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-limit, vmax=limit,
                      aspect="auto")  # fmt: skip
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if math.isfinite(matrix[i, j]):
                dark = abs(matrix[i, j]) > 0.6 * limit
                ax.text(j, i, f"{matrix[i, j]:+.4f}\n{notes.get((r, c), '')}", ha="center",
                        va="center", fontsize=8, color="white" if dark else "black")  # fmt: skip
    fig.colorbar(image, ax=ax, label=colour_label, shrink=0.9)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(axis_labels[1])
    ax.set_ylabel(axis_labels[0])
    if caption:
        fig.text(0.01, 0.01, caption, fontsize=8, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.06 if caption else 0, 1, 1))
    return _save(fig, path)


def gap_heatmap(report: Any, directory: Path) -> list[Path]:
    """gap_logistic.png/.svg: horizon x size, the pooled gap to logistic regression."""
    rows = [c for c in report.comparisons if c.baseline == LOGISTIC]
    if not rows:
        return []
    order = {r.result.budget: (r.result.best.n_params if r.result.best else 0)
             for r in report.rows}  # fmt: skip
    rows.sort(key=lambda c: (c.horizon, order.get(c.size, 0)))
    h_levels, s_levels, matrix = pivot(rows, lambda c: f"h{c.horizon}", lambda c: c.size,
                                       lambda c: c.pooled.gap)  # fmt: skip
    s_sorted = sorted(s_levels, key=lambda s: order.get(str(s), 0))
    matrix = matrix[:, [s_levels.index(s) for s in s_sorted]]
    short = {"beats": "beats", "loses to": "loses", "no detectable difference": "n.d."}
    notes = {(f"h{c.horizon}", c.size): short.get(c.word, "") for c in rows}
    m = max((c.holm_m for c in rows), default=0)
    return heatmap(h_levels, s_sorted, matrix, notes,
                   "test BCE gap to logistic regression\n(experiment's runs minus the "
                   "baseline, pooled over test periods)", "gap in test BCE (negative: model "
                   "better)", directory / "gap_logistic", ("horizon", "parameter budget"),
                   f"beats / loses: the Holm-adjusted interval ({m} comparisons, 5%) excludes "
                   "0; n.d.: no detectable difference")  # fmt: skip


def _save(fig: Any, stem: Path) -> list[Path]:
    plt = _pyplot()
    out = []
    for suffix in (".png", ".svg"):
        path = stem.with_suffix(suffix)
        temporary = path.with_name(f".{path.name}.tmp{suffix}")
        fig.savefig(temporary, dpi=130)
        temporary.replace(path)
        out.append(path)
    plt.close(fig)
    return out


def write_figures(report: Any, directory: Path) -> list[Path]:
    """Every figure of the report; returns the files written."""
    out: list[Path] = []
    for horizon in report.horizons():
        out += scaling_figure(report, horizon, directory)
    out += gap_heatmap(report, directory)
    return out
