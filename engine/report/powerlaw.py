"""Fit loss(N) = a * N^(-alpha) + c to (parameter count, loss) points, with a
hierarchical bootstrap interval for alpha, and say plainly whether there is evidence of
scaling.

The points come in a hierarchy: sizes (one experiment = one parameter budget), several
configurations per size (the top trials of the search, each with its own parameter
count), several seeds per configuration. Picking one configuration per size adds an
offset to every seed of that size; an interval built from seed residuals alone is far
too narrow (28% false "scaling" and 25% false "inverse" on flat truth, issue 13).

How the fit works, and why:
- For a fixed alpha the model is linear in (a, c), so least squares has a closed form.
  The fit profiles alpha over a fine grid in [-ALPHA_BOUND, ALPHA_BOUND] and refines the
  best grid point. No starting values, no optimizer that wanders off on flat data.
- `a >= 0`. Then alpha > 0 means loss falls with N, alpha < 0 means it rises (inverse
  scaling), and the flat fit (a = 0) is reported as alpha = 0. N is divided by its
  geometric mean inside the fit, so every alpha in the range is numerically tame.
- Bootstrap: model-based and hierarchical. The residuals of the fitted curve are split
  into three levels: size (the mean residual of a size's configurations), configuration
  within size (a configuration's mean residual minus its size's) and seed within
  configuration (a seed minus its configuration's mean). Each replicate is the fitted
  curve plus a resampled residual at every level (each level scaled for the degrees of
  freedom it lost: sizes by sqrt(S / (S - 3)) for the three fitted parameters,
  configurations by sqrt(K / (K - 1)), seeds by sqrt(n / (n - 1))); the interval is the
  percentile interval of the refitted alphas. The size level carries the within-size
  noise once more, so the interval errs wide, not narrow. Calibration on synthetic
  campaigns: bench/report_calibration.py, quoted in docs/report.md.
- A verdict needs MIN_SIZES sizes: with three a three-parameter curve passes through
  their means whatever they are ("too few sizes").
- Verdict: the interval of alpha contains 0 -> "no evidence of scaling". An alpha (or an
  interval end) on +-ALPHA_BOUND is "unbounded": the data do not pin it down (one step
  between sizes rather than a power law), and no value is quoted for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

ALPHA_BOUND = 2.0
GRID_POINTS = 1600  # even: exact 0 is not on the grid (z = N^0 is constant there)
N_PARAMETERS = 3
MIN_SIZES = 4
UNBOUNDED = "unbounded"

Verdict = Literal["scaling", "inverse scaling", "no evidence of scaling", "too few sizes"]
BootstrapKind = Literal["hierarchical", "none"]

FloatArray = NDArray[np.float64]


def _at_edge(value: float) -> bool:
    return abs(value) >= ALPHA_BOUND - 1e-6


def alpha_text(value: float | None, digits: int = 3) -> str:
    """An alpha as text: "unbounded" at the edge of the fitted range, "n/a" if unknown."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if _at_edge(value):
        return UNBOUNDED if value > 0 else "-" + UNBOUNDED
    return f"{value:.{digits}f}"


@dataclass(frozen=True)
class PowerLawFit:
    """The fitted curve loss(N) = a * N^(-alpha) + c and what it says."""

    n_points: int
    n_sizes: int
    n_configs: int
    a: float
    alpha: float
    c: float
    alpha_low: float | None  # percentile bootstrap interval of alpha
    alpha_high: float | None
    level: float
    n_boot: int
    bootstrap: BootstrapKind
    rmse: float
    at_bound: bool  # alpha ended on +-ALPHA_BOUND: "unbounded"
    verdict: Verdict

    def predict(self, n_params: float) -> float:
        return float(self.a * n_params ** (-self.alpha) + self.c)

    def interval_text(self) -> str:
        if self.alpha_low is None or self.alpha_high is None:
            return "n/a"
        return f"[{alpha_text(self.alpha_low)}, {alpha_text(self.alpha_high)}]"

    def summary(self) -> str:
        """One line a reader can act on."""
        if self.verdict == "too few sizes":
            fitted = "" if math.isnan(self.alpha) else f"alpha = {alpha_text(self.alpha)} but "
            return (
                f"{fitted}too few sizes for a verdict ({self.n_sizes} sizes, "
                f"{self.n_points} points; a verdict needs {MIN_SIZES} sizes or more)"
            )
        pct = round(self.level * 100)
        alpha = f"alpha = {alpha_text(self.alpha)}, {pct}% CI {self.interval_text()}"
        spread = (
            f" over {self.n_sizes} sizes, {self.n_configs} configurations, {self.n_points} runs"
        )
        if self.verdict == "no evidence of scaling":
            return f"no evidence of scaling: {alpha} contains 0{spread}"
        if self.verdict == "inverse scaling":
            return f"inverse scaling (loss rises with size): {alpha}{spread}"
        return f"loss falls with size: {alpha}, floor c = {self.c:.4f}{spread}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _labels(values: Sequence[Any] | None, default: FloatArray, n: int) -> NDArray[Any]:
    if values is None:
        return default
    out = np.asarray([str(v) for v in values])
    if out.shape != (n,):
        raise ValueError("sizes and configs must give one label per point")
    return out


def fit_power_law(
    n_params: ArrayLike,
    losses: ArrayLike,
    *,
    sizes: Sequence[Any] | None = None,
    configs: Sequence[Any] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> PowerLawFit:
    """Fit a * N^(-alpha) + c to the points and bootstrap an interval for alpha.

    `sizes` labels each point's size (experiment) and `configs` its configuration; by
    default both are the point's parameter count (points of one N are seeds of one
    configuration of one size). Configuration labels need only be unique within a
    size. A verdict needs MIN_SIZES sizes. Non-finite points are dropped.
    """
    x_raw = np.asarray(n_params, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    if x_raw.shape != y.shape or x_raw.ndim != 1:
        raise ValueError("n_params and losses must be 1-D sequences of the same length")
    size_of = _labels(sizes, x_raw.astype(str), len(y))
    config_of = _labels(configs, x_raw.astype(str), len(y))
    keep = np.isfinite(x_raw) & np.isfinite(y) & (x_raw > 0)
    x_raw, y, size_of, config_of = x_raw[keep], y[keep], size_of[keep], config_of[keep]
    size_ids = np.unique(size_of, return_inverse=True)[1]
    config_ids = np.unique(np.char.add(np.char.add(size_of, "/"), config_of), return_inverse=True)[
        1
    ]
    n, n_sizes, n_configs = len(y), len(np.unique(size_ids)), len(np.unique(config_ids))
    if len(np.unique(x_raw)) < N_PARAMETERS or n < N_PARAMETERS + 1:
        return PowerLawFit(
            n, n_sizes, n_configs, math.nan, math.nan, math.nan, None, None, level, 0, "none",
            math.nan, False, "too few sizes",
        )  # fmt: skip

    log_ref = float(np.mean(np.log(np.unique(x_raw))))
    x = np.log(x_raw) - log_ref  # log(N / N_ref)
    alpha, a_ref, c = _refine(x, y, float(_best_alpha(x, y[None, :])[0]))
    fitted = a_ref * np.exp(-alpha * x) + c
    rmse = float(np.sqrt(np.mean((y - fitted) ** 2)))
    a = a_ref * math.exp(alpha * log_ref)  # back to raw N: a_ref * (N / N_ref)^-alpha
    at_bound = _at_edge(alpha)

    if n_sizes < MIN_SIZES or n_boot <= 0:
        return PowerLawFit(
            n, n_sizes, n_configs, a, alpha, c, None, None, level, 0, "none", rmse, at_bound,
            "too few sizes",
        )  # fmt: skip
    replicates = hierarchical_replicates(fitted, y, size_ids, config_ids, n_boot, seed)
    boot_alphas = _best_alpha(x, replicates)
    tail = (1 - level) / 2 * 100
    low, high = (float(v) for v in np.percentile(boot_alphas, [tail, 100 - tail]))
    verdict: Verdict
    if low <= 0 <= high:
        verdict = "no evidence of scaling"
    elif low > 0:
        verdict = "scaling"
    else:
        verdict = "inverse scaling"
    return PowerLawFit(
        n_points=n,
        n_sizes=n_sizes,
        n_configs=n_configs,
        a=a,
        alpha=alpha,
        c=c,
        alpha_low=low,
        alpha_high=high,
        level=level,
        n_boot=len(boot_alphas),
        bootstrap="hierarchical",
        rmse=rmse,
        at_bound=at_bound,
        verdict=verdict,
    )


def _group_mean(values: FloatArray, groups: NDArray[np.intp]) -> FloatArray:
    counts = np.bincount(groups)
    return np.asarray(np.bincount(groups, weights=values) / np.maximum(counts, 1), np.float64)


def _dof_scale(groups: NDArray[np.intp], lost: int = 1) -> FloatArray:
    """sqrt(k / (k - lost)) per member of each group of k (1 where k <= lost)."""
    k = np.bincount(groups).astype(np.float64)
    scale = np.where(k > lost, np.sqrt(k / np.maximum(k - lost, 1)), 1.0)
    return np.asarray(scale[groups], dtype=np.float64)


def hierarchical_replicates(
    fitted: FloatArray,
    y: FloatArray,
    size_ids: NDArray[np.intp],
    config_ids: NDArray[np.intp],
    n_boot: int,
    seed: int,
) -> FloatArray:
    """n_boot data sets (n_boot, n) on the same points: the fitted curve plus a resampled
    residual at each level (size, configuration within size, seed within
    configuration), each scaled for its lost degrees of freedom (see module doc)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    residual = y - fitted
    config_mean = _group_mean(residual, config_ids)  # (C,)
    seed_res = (residual - config_mean[config_ids]) * _dof_scale(config_ids)
    size_of_config = np.zeros(len(config_mean), dtype=np.intp)
    size_of_config[config_ids] = size_ids
    size_mean = _group_mean(config_mean, size_of_config)  # (S,) configurations weigh equally
    config_res = (config_mean - size_mean[size_of_config]) * _dof_scale(size_of_config)
    n_sizes = len(size_mean)
    size_res = size_mean * math.sqrt(n_sizes / max(n_sizes - N_PARAMETERS, 1))
    out = np.repeat(fitted[None, :], n_boot, axis=0)
    out += seed_res[rng.integers(0, n, size=(n_boot, n))]
    out += config_res[rng.integers(0, len(config_res), size=(n_boot, len(config_res)))][
        :, config_ids
    ]
    out += size_res[rng.integers(0, n_sizes, size=(n_boot, n_sizes))][:, size_ids]
    return np.asarray(out, dtype=np.float64)


def _alpha_grid() -> FloatArray:
    return np.linspace(-ALPHA_BOUND, ALPHA_BOUND, GRID_POINTS)


def _best_alpha(x: FloatArray, ys: FloatArray) -> FloatArray:
    """The grid alpha of least squared error for each row of `ys` (B, n) -> (B,).

    For fixed alpha, z = exp(-alpha x) and the least-squares a is Szy / Szz (centred
    sums); with a >= 0 the error is Syy - max(Szy, 0)^2 / Szz. A row with no alpha that
    improves on the flat fit (a = 0 everywhere) gets alpha = 0.
    """
    grid = _alpha_grid()
    z = np.exp(-grid[:, None] * x[None, :])  # (G, n)
    zc = z - z.mean(axis=1, keepdims=True)
    szz = np.sum(zc**2, axis=1)  # (G,)
    yc = ys - ys.mean(axis=1, keepdims=True)  # (B, n)
    szy = yc @ zc.T  # (B, G)
    gain = np.maximum(szy, 0.0) ** 2 / szz  # error reduction over the flat fit
    best = np.argmax(gain, axis=1)
    alphas = grid[best]
    flat = gain[np.arange(len(best)), best] <= 1e-15 * np.maximum(np.sum(yc**2, axis=1), 1e-300)
    alphas[flat] = 0.0
    return np.asarray(alphas, dtype=np.float64)


def _linear_fit(x: FloatArray, y: FloatArray, alpha: float) -> tuple[float, float, float]:
    """(a_ref, c, sse) of y = a_ref * exp(-alpha x) + c with a_ref >= 0."""
    if alpha == 0.0:
        return 0.0, float(y.mean()), float(np.sum((y - y.mean()) ** 2))
    z = np.exp(-alpha * x)
    zc, yc = z - z.mean(), y - y.mean()
    szz = float(np.sum(zc**2))
    a = max(float(np.sum(zc * yc)) / szz, 0.0) if szz > 0 else 0.0
    c = float(y.mean() - a * z.mean())
    return a, c, float(np.sum((y - a * z - c) ** 2))


def _refine(x: FloatArray, y: FloatArray, alpha0: float) -> tuple[float, float, float]:
    """Polish the grid alpha by a bounded scalar search between its grid neighbours."""
    if alpha0 == 0.0:
        a, c, _ = _linear_fit(x, y, 0.0)
        return 0.0, a, c
    step = 2 * ALPHA_BOUND / (GRID_POINTS - 1)
    lo, hi = max(alpha0 - step, -ALPHA_BOUND), min(alpha0 + step, ALPHA_BOUND)
    result = minimize_scalar(
        lambda al: _linear_fit(x, y, float(al))[2],
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-7},
    )
    best = float(result.x)
    if _linear_fit(x, y, best)[2] > _linear_fit(x, y, alpha0)[2]:
        best = alpha0
    a, c, _ = _linear_fit(x, y, best)
    if a == 0.0:
        return 0.0, 0.0, float(y.mean())
    return best, a, c
