"""Calibration of `hpotui report`'s verdicts on simulated campaigns (issue 22).

1. The trend per decade (engine/report/trend.py) at 4, 5, 6 and 8 sizes, with noise
   dominated at the size, configuration and seed level (and configurations unbalanced,
   2 or 3 per size): false "falls"/"rises" on flat truth, coverage of the true slope and
   power on a power law (alpha 0.3) falling 0.02 per decade on average.
2. How often the power law's exponent is printed on that law (never at 4 sizes).
3. The paired comparison (engine/report/compare.py): false differences at a true gap of
   0 and power at a gap of 0.004, for 700 test days in 3 periods, with the batch-means
   variance the report uses and, for reference, statsmodels' Newey-West HAC variance.

    python3 bench/report_calibration.py [--campaigns 4000] [--quick]

prints markdown tables (quoted in docs/report.md) and the time taken.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from tests.report.calibration import (
    NOISES,
    TREND_HEADER,
    calibrate_comparison,
    calibrate_trend,
    exponent_rate,
    loss_gaps,
)

SIZES = (4, 5, 6, 8)


def newey_west_false_rate(horizon: int, campaigns: int, seed: int = 0) -> float:
    """The false-difference rate of a Diebold-Mariano test with statsmodels' Newey-West
    variance (lags max(h, 1.5 n^(1/3)), small-sample correction), normal quantile."""
    import statsmodels.api as sm

    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(campaigns):
        days = np.concatenate([loss_gaps(rng, 233, horizon) for _ in range(3)])
        lag = max(horizon, math.ceil(1.5 * len(days) ** (1 / 3)))
        fit = sm.OLS(days, np.ones((len(days), 1))).fit(
            cov_type="HAC", cov_kwds={"maxlags": lag, "use_correction": True}
        )
        hits += abs(fit.params[0] / fit.bse[0]) > 1.96
    return hits / campaigns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=4000)
    parser.add_argument("--quick", action="store_true", help="fewer campaigns, for a look")
    args = parser.parse_args()
    campaigns = 400 if args.quick else args.campaigns
    started = time.perf_counter()
    print(TREND_HEADER.format(per_decade=-0.02))
    for n_sizes in SIZES:
        for mix in NOISES:
            print(calibrate_trend(n_sizes, mix, campaigns=campaigns, seed=n_sizes).row(),
                  flush=True)  # fmt: skip
    print("\n| sizes | noise dominated by | exponent printed (power law) |\n|---|---|---|")
    for n_sizes in SIZES:
        for mix in ("size", "seed"):
            rate = exponent_rate(n_sizes, mix, campaigns=max(campaigns // 8, 50))
            print(f"| {n_sizes} | {mix} | {rate:.1%} |", flush=True)
    small = max(campaigns // 4, 100)
    print(
        "\n| horizon | test windows | campaigns | false differences (batch means) | power at "
        "+0.004 | false differences (Newey-West, reference) |\n|---|---|---|---|---|---|"
    )
    for horizon in (1, 5):
        false, power = calibrate_comparison(horizon, campaigns=small, seed=horizon)
        nw = newey_west_false_rate(horizon, small, seed=horizon)
        print(f"| {horizon} | 699 (3 periods) | {small} | {false:.1%} | {power:.1%} | {nw:.1%} |",
              flush=True)  # fmt: skip
    print(f"\n{time.perf_counter() - started:.0f} s, {campaigns} campaigns per trend row")


if __name__ == "__main__":
    main()
