"""Calibration of the report's verdicts on simulated campaigns (issue 22): the trend per
decade (engine/report/trend.py) and the paired comparison with a baseline
(engine/report/compare.py). bench/report_calibration.py prints the tables quoted in
docs/report.md; tests/report/test_calibration.py runs small versions. Imports only numpy
and the report's own functions, so the bench runs outside pytest.

A simulated campaign is what the report sees: S sizes (budgets 10K x 2^i, as the demo),
each with J configurations (parameter counts within +-20% of the budget) of K runs
(seeds x test periods); a run's value is the truth at its N plus noise at three levels:
one offset per size (shared by all its runs), one per configuration, one per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRUE_ALPHA = 0.3
FLAT = 0.6


@dataclass(frozen=True)
class Noise:
    """Standard deviations of the three levels, and how many configurations a size has
    (`unbalanced`: 2 or 3 at random, as when a search completes few trials)."""

    size: float
    config: float
    seed: float
    unbalanced: bool = False

    def label(self) -> str:
        text = f"{self.size:g} / {self.config:g} / {self.seed:g}"
        return text + (" (2-3 configs)" if self.unbalanced else "")


NOISES = {
    "size": Noise(size=0.01, config=0.003, seed=0.003),
    "configuration": Noise(size=0.002, config=0.01, seed=0.003),
    "seed": Noise(size=0.002, config=0.003, seed=0.01),
    "configuration, unbalanced": Noise(size=0.002, config=0.01, seed=0.003, unbalanced=True),
}


def power_law_a(n_sizes: int, per_decade: float) -> float:
    """The `a` of a * N^-TRUE_ALPHA + c whose mean slope over the sizes' span (10K to
    10K x 2^(S-1)) is `per_decade` (negative: falls)."""
    low, high = 1e4, 1e4 * 2 ** (n_sizes - 1)
    decades = np.log10(high / low)
    return float(-per_decade * decades / (low**-TRUE_ALPHA - high**-TRUE_ALPHA))


def simulate_means(
    rng: np.random.Generator,
    n_sizes: int,
    noise: Noise,
    *,
    a: float,
    campaigns: int,
    configs: int = 3,
    runs: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, means, within, truth, n_configs) of `campaigns` campaigns, each (campaigns, S):
    what `engine.report.trend.size_means` computes from the runs (configurations weigh
    equally; within = variance of the configuration means over their number), and the
    expected size mean without noise."""
    shape = (campaigns, n_sizes, configs)
    budgets = 1e4 * 2.0 ** np.arange(n_sizes)
    n = budgets[None, :, None] * rng.uniform(0.8, 1.2, shape)
    truth_runs = a * n**-TRUE_ALPHA + (0.5 if a else FLAT)
    config_mean = (
        truth_runs
        + rng.normal(0, noise.size, (campaigns, n_sizes, 1))
        + rng.normal(0, noise.config, shape)
        + rng.normal(0, noise.seed, (*shape, runs)).mean(axis=3)
    )
    present = np.ones(shape, dtype=bool)
    if noise.unbalanced:
        present[:, :, 2] = rng.random((campaigns, n_sizes)) < 0.5
    count = present.sum(axis=2)
    means = np.where(present, config_mean, 0).sum(axis=2) / count
    x = np.where(present, np.log10(n), 0).sum(axis=2) / count
    truth = np.where(present, truth_runs, 0).sum(axis=2) / count
    deviation = np.where(present, (config_mean - means[..., None]) ** 2, 0).sum(axis=2)
    within = deviation / (count - 1) / count
    return x, means, within, truth, count


@dataclass(frozen=True)
class TrendCalibration:
    n_sizes: int
    mix: str
    noise: Noise
    campaigns: int
    false_falls: float  # flat truth called "falls"
    false_rises: float
    coverage: float  # power law: the interval holds the true slope of the size means
    power: float  # power law called "falls"
    per_decade: float
    mean_width: float

    @property
    def false_total(self) -> float:
        return self.false_falls + self.false_rises

    def row(self) -> str:
        se = np.sqrt(self.false_total * (1 - self.false_total) / self.campaigns)
        return (
            f"| {self.n_sizes} | {self.mix} | {self.noise.label()} | {self.campaigns} | "
            f"{self.false_falls:.1%} | {self.false_rises:.1%} | {self.false_total:.1%} "
            f"(±{1.96 * se:.1%}) | {self.coverage:.1%} | {self.power:.1%} | "
            f"{self.mean_width:.4f} |"
        )


TREND_HEADER = (
    "| sizes | noise dominated by | sd size / config / run | campaigns | false falls "
    "| false rises | false together (±95% MC) | coverage of true slope | power at "
    "{per_decade:+.3f}/decade | mean interval width |\n|---|---|---|---|---|---|---|---|---|---|"
)


def calibrate_trend(
    n_sizes: int,
    mix: str,
    *,
    campaigns: int = 4000,
    per_decade: float = -0.02,
    seed: int = 0,
    level: float = 0.95,
) -> TrendCalibration:
    """Flat truth and a power law (alpha TRUE_ALPHA, mean slope `per_decade`), each
    `campaigns` times, through `engine.report.trend.trend_of_means`."""
    from engine.report.trend import SizeMean, trend_of_means

    noise = NOISES[mix]
    rng = np.random.default_rng(seed)
    counts = {"loss falls with size": 0, "loss rises with size": 0, "covered": 0, "power": 0}
    widths = []
    for a in (0.0, power_law_a(n_sizes, per_decade)):
        x, means, within, truth, count = simulate_means(
            rng, n_sizes, noise, a=a, campaigns=campaigns
        )
        for k in range(campaigns):
            sizes = [
                SizeMean(f"s{i}", float(x[k, i]), float(means[k, i]), int(count[k, i]), 0,
                         float(within[k, i]))
                for i in range(n_sizes)
            ]  # fmt: skip
            result = trend_of_means(sizes, level)
            if a == 0.0:
                if result.verdict in ("loss falls with size", "loss rises with size"):
                    counts[result.verdict] += 1
                continue
            xc = x[k] - x[k].mean()
            true_slope = float(np.sum(xc * (truth[k] - truth[k].mean())) / np.sum(xc**2))
            counts["covered"] += result.low <= true_slope <= result.high
            counts["power"] += result.verdict == "loss falls with size"
            widths.append(result.high - result.low)
    return TrendCalibration(
        n_sizes, mix, noise, campaigns,
        counts["loss falls with size"] / campaigns, counts["loss rises with size"] / campaigns,
        counts["covered"] / campaigns, counts["power"] / campaigns, per_decade,
        float(np.mean(widths)),
    )  # fmt: skip


def exponent_rate(n_sizes: int, mix: str, *, campaigns: int = 500, seed: int = 0) -> float:
    """How often the exponent is printed (determined) on a power law of this design."""
    from engine.report.powerlaw import fit_exponent
    from engine.report.trend import SizeMean

    rng = np.random.default_rng(seed)
    x, means, within, _, _ = simulate_means(
        rng, n_sizes, NOISES[mix], a=power_law_a(n_sizes, -0.02), campaigns=campaigns
    )
    shown = 0
    for k in range(campaigns):
        sizes = [SizeMean(f"s{i}", float(x[k, i]), float(means[k, i]), 3, 9, float(within[k, i]))
                 for i in range(n_sizes)]  # fmt: skip
        shown += fit_exponent(sizes).determined
    return shown / campaigns


# ---- the paired comparison: per-day loss gaps with overlapping labels -------------------


def loss_gaps(
    rng: np.random.Generator, days: int, horizon: int, *, mean: float = 0.0, rho: float = 0.3
) -> np.ndarray:
    """A day series of loss differences between two forecasters: zero-mean noise made
    dependent by the horizon (an h-day label overlaps h-1 neighbours: a moving sum of h
    shocks) and by regimes (AR(1) with `rho`), plus `mean`."""
    shocks = rng.standard_t(5, days + horizon)  # heavier tails than normal, as BCE gaps
    overlap = np.convolve(shocks, np.ones(horizon) / np.sqrt(horizon), mode="valid")[:days]
    out = np.empty(days)
    level = 0.0
    for t in range(days):
        level = rho * level + overlap[t]
        out[t] = level
    return np.asarray(mean + 0.02 * out / out.std(), dtype=np.float64)


def calibrate_comparison(
    horizon: int, *, days: int = 700, periods: int = 3, campaigns: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(false "differs" rate at a true gap of 0, power at a true gap of 0.004) of the
    paired test (`engine.report.compare.paired_gap`) at 95%, unadjusted."""
    from engine.report.compare import paired_gap

    rng = np.random.default_rng(seed)
    out = []
    for mean in (0.0, 0.004):
        hits = 0
        for _ in range(campaigns):
            series = [loss_gaps(rng, days // periods, horizon, mean=mean) for _ in range(periods)]
            gap = paired_gap(series, np.zeros(1), horizon, 0.05)
            hits += gap.low > 0 or gap.high < 0
        out.append(hits / campaigns)
    return out[0], out[1]
