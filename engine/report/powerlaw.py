"""The exponent and floor of loss(N) = a * N^(-alpha) + c, shown only where the sizes
determine them.

The verdict on scaling is the trend per decade (engine/report/trend.py): it needs two
parameters and holds its level at 4 sizes. A power law with a floor has three, so
through S size means it keeps S - 3 degrees of freedom for the noise: one at 4 sizes,
where its interval reached the +-2 search bound in 80-93% of simulated campaigns and
printed "[0.001, unbounded]" (issue 22). So the exponent is shown only when

- there are at least MIN_SIZES (5) sizes,
- the curve falls (a > 0, alpha > 0) to a floor that is not negative (c >= 0: a BCE
  cannot go below 0; a negative c is the log-linear limit, a huge a with c = -a),
- and the profile-likelihood interval of alpha lies strictly inside (0, ALPHA_BOUND):
  it touches neither the bound nor the grid points next to 0, where N^-alpha turns into
  the log-linear limit 1 - alpha log N and alpha means nothing.

Otherwise the text is "exponent not determined (S sizes)" with the reason, and no number.

How: for fixed alpha the model is linear in (a, c), so the least squares error has a
closed form (`_profile`). The fit profiles alpha over a grid on [-ALPHA_BOUND,
ALPHA_BOUND] (N divided by its geometric mean, so every alpha is numerically tame) and
refines the best point. The interval is {alpha : SSE(alpha) <= SSE_min * (1 +
F(level; 1, S - 3) / (S - 3))}, the F-based profile interval for one parameter of a
nonlinear least-squares fit, on the size means the trend uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from scipy.optimize import minimize_scalar

from engine.report.trend import SizeMean

ALPHA_BOUND = 2.0
GRID_POINTS = 1600  # even: exact 0 is not on the grid (N^0 is constant there)
MIN_SIZES = 5
NEAR_ZERO = 2  # grid points each side of 0 that stand for the log-linear limit

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Exponent:
    """alpha, its interval, a and c when determined; otherwise why not."""

    n_sizes: int
    determined: bool
    alpha: float | None = None
    low: float | None = None
    high: float | None = None
    a: float | None = None
    c: float | None = None
    level: float = 0.95
    reason: str = ""

    def text(self) -> str:
        if not self.determined:
            return f"exponent not determined ({self.n_sizes} sizes: {self.reason})"
        pct = round(self.level * 100)
        return (
            f"alpha = {self.alpha:.2f}, {pct}% profile interval [{self.low:.2f}, "
            f"{self.high:.2f}], floor c = {self.c:.4f}"
        )

    def predict(self, n_params: float) -> float:
        if not self.determined or self.a is None or self.alpha is None or self.c is None:
            return math.nan
        return float(self.a * n_params ** (-self.alpha) + self.c)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _grid() -> FloatArray:
    return np.linspace(-ALPHA_BOUND, ALPHA_BOUND, GRID_POINTS)


def _profile(x: FloatArray, y: FloatArray, alphas: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(SSE, a) of y = a * exp(-alpha x) + c at each alpha, a >= 0 (a = 0: flat)."""
    z = np.exp(-alphas[:, None] * x[None, :])
    zc = z - z.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    szz = np.sum(zc**2, axis=1)
    szy = zc @ yc
    a = np.where(szz > 0, np.maximum(szy, 0.0) / np.where(szz > 0, szz, 1.0), 0.0)
    sse = np.sum(yc**2) - a * np.maximum(szy, 0.0)
    return np.maximum(sse, 0.0), a


def fit_exponent(means: Sequence[SizeMean], level: float = 0.95) -> Exponent:
    """The exponent of the size means when they determine it (module doc)."""
    sizes = [m for m in means if math.isfinite(m.mean) and math.isfinite(m.log10_n)]
    n = len(sizes)
    if n < MIN_SIZES:
        return Exponent(n, False, level=level, reason=f"a floor and an exponent need "
                        f"{MIN_SIZES} sizes or more")  # fmt: skip
    log_n = np.array([m.log10_n * math.log(10) for m in sizes])
    y = np.array([m.mean for m in sizes])
    ref = float(log_n.mean())
    x = log_n - ref
    grid = _grid()
    sse, _ = _profile(x, y, grid)
    best = int(np.argmin(sse))
    alpha = _refine(x, y, float(grid[best]))
    sse_min = float(_profile(x, y, np.array([alpha]))[0][0])
    a_ref = float(_profile(x, y, np.array([alpha]))[1][0])
    c = float(y.mean() - a_ref * np.exp(-alpha * x).mean())
    if a_ref <= 0 or alpha <= 0:
        return Exponent(n, False, level=level, reason="the size means do not fall as a power law")
    if c < 0:
        return Exponent(n, False, level=level,
                        reason="the fitted floor is below 0, the log-linear limit")  # fmt: skip
    limit = sse_min * (1 + float(stats.f.ppf(level, 1, n - 3)) / (n - 3))
    inside = np.append(grid[sse <= limit], alpha)  # an exact fit: the point itself
    positive = grid[grid > 0]
    lowest_meaningful = float(positive[NEAR_ZERO - 1]) if len(positive) >= NEAR_ZERO else 0.0
    step = float(grid[1] - grid[0])
    if inside.min() <= lowest_meaningful or inside.max() >= ALPHA_BOUND - step:
        return Exponent(n, False, level=level, reason="its interval reaches the log-linear "
                        f"limit or the search bound +-{ALPHA_BOUND:g}")  # fmt: skip
    a = a_ref * math.exp(alpha * ref)  # back to raw N: a_ref * (N / N_ref)^-alpha
    return Exponent(n, True, alpha, float(inside.min()), float(inside.max()), a, c, level)


def _refine(x: FloatArray, y: FloatArray, alpha0: float) -> float:
    """Polish a grid alpha by a bounded scalar search between its grid neighbours."""
    step = 2 * ALPHA_BOUND / (GRID_POINTS - 1)
    lo, hi = max(alpha0 - step, -ALPHA_BOUND), min(alpha0 + step, ALPHA_BOUND)

    def error(al: float) -> float:
        return float(_profile(x, y, np.array([al]))[0][0])

    result = minimize_scalar(error, bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
    best = float(result.x)
    return best if error(best) <= error(alpha0) else alpha0
