"""Synthetic campaigns with noise at three levels (size, configuration, seed), and the
calibration of the scaling verdict over many of them (bench/report_calibration.py and
tests/report/test_calibration.py). Imports only numpy and the fit, so the bench can run
it outside pytest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Noise:
    """Standard deviations of the three levels of a synthetic campaign's test losses."""

    size: float  # shared by every configuration and seed of one size
    config: float  # one configuration's offset, shared by its seeds
    seed: float

    def label(self) -> str:
        return f"size {self.size:g} / config {self.config:g} / seed {self.seed:g}"


@dataclass(frozen=True)
class SyntheticPoints:
    """One synthetic campaign's retrained runs: a point per (size, configuration, seed)."""

    n_params: np.ndarray
    losses: np.ndarray
    sizes: list[str]
    configs: list[str]


def hierarchical_points(
    rng: np.random.Generator,
    n_sizes: int,
    loss: Callable[[float], float],
    noise: Noise,
    *,
    configs: int = 3,
    seeds: int = 3,
    smallest: float = 10_000,
    step: float = 2.5,
) -> SyntheticPoints:
    """A campaign as the report sees it: budgets smallest * step^i, `configs`
    configurations per budget (each within +-20% of it, as a budget's grid), `seeds`
    seeds each; loss(N) plus noise at the size, configuration and seed level."""
    n_params, losses, sizes, names = [], [], [], []
    for i in range(n_sizes):
        budget = smallest * step**i
        size_offset = rng.normal(0, noise.size)
        for j in range(configs):
            n = float(budget * rng.uniform(0.8, 1.2))
            config_offset = rng.normal(0, noise.config)
            for _ in range(seeds):
                n_params.append(n)
                losses.append(loss(n) + size_offset + config_offset + rng.normal(0, noise.seed))
                sizes.append(f"size{i}")
                names.append(f"config{j}")
    return SyntheticPoints(np.array(n_params), np.array(losses), sizes, names)


@dataclass(frozen=True)
class Calibration:
    """How often the verdict is wrong on flat truth, and how often the interval covers
    a true alpha, over many synthetic campaigns of one shape."""

    n_sizes: int
    noise: Noise
    campaigns: int
    false_scaling: float  # flat truth called "scaling"
    false_inverse: float  # flat truth called "inverse scaling"
    coverage: float  # power-law truth: interval contains the true alpha
    power: float  # power-law truth called "scaling"

    def row(self) -> str:
        coverage = f"{self.coverage:.1%}" if self.coverage == self.coverage else "n/a (no interval)"
        return (
            f"| {self.n_sizes} | {self.noise.label()} | {self.campaigns} | "
            f"{self.false_scaling:.1%} | {self.false_inverse:.1%} | "
            f"{self.false_scaling + self.false_inverse:.1%} | {coverage} | {self.power:.1%} |"
        )


CALIBRATION_HEADER = (
    "| sizes | noise sd (size / config / seed) | campaigns | false scaling | false inverse "
    "| false together | coverage of true alpha | power |\n|---|---|---|---|---|---|---|---|"
)
TRUE_ALPHA = 0.3


def calibrate(
    n_sizes: int,
    noise: Noise,
    *,
    campaigns: int = 200,
    n_boot: int = 400,
    drop: float = 0.03,
    seed: int = 0,
) -> Calibration:
    """Flat truth (loss 0.6 at every size) and a power law (alpha TRUE_ALPHA, loss falling
    by `drop` from the smallest budget to the largest), each `campaigns` times, through
    `fit_power_law` with its default hierarchical bootstrap."""
    from engine.report.powerlaw import MIN_SIZES, fit_power_law

    rng = np.random.default_rng(seed)
    largest = 10_000 * 2.5 ** (n_sizes - 1)
    a = drop / (10_000**-TRUE_ALPHA - largest**-TRUE_ALPHA)
    counts = {"scaling": 0, "inverse scaling": 0, "covered": 0, "power": 0}
    for k in range(campaigns):
        for truth in ("flat", "power"):
            if truth == "flat":
                points = hierarchical_points(rng, n_sizes, lambda n: 0.6, noise)
            else:
                points = hierarchical_points(
                    rng, n_sizes, lambda n: a * n**-TRUE_ALPHA + 0.5, noise
                )
            fit = fit_power_law(
                points.n_params,
                points.losses,
                sizes=points.sizes,
                configs=points.configs,
                n_boot=n_boot,
                seed=k,
            )
            if truth == "flat":
                if fit.verdict in ("scaling", "inverse scaling"):
                    counts[fit.verdict] += 1
            else:
                low, high = fit.alpha_low, fit.alpha_high
                counts["covered"] += (
                    low is not None and high is not None and low <= TRUE_ALPHA <= high
                )
                counts["power"] += fit.verdict == "scaling"
    return Calibration(
        n_sizes,
        noise,
        campaigns,
        counts["scaling"] / campaigns,
        counts["inverse scaling"] / campaigns,
        counts["covered"] / campaigns if n_sizes >= MIN_SIZES else float("nan"),
        counts["power"] / campaigns,
    )
