"""Calibration of the report's scaling verdict on synthetic campaigns (issue 13).

Each campaign is what `hpotui report` fits: budgets 10K * 2.5^i, three configurations
per budget (within +-20% of it), three seeds each, test losses with noise at the size,
configuration and seed level (tests/report/synth.py). On flat truth the verdict should
be "no evidence of scaling" (false "scaling" plus false "inverse" at most 10%); on a
power law (alpha 0.3, loss falling by 0.03 over the budgets) the 95% interval should
cover the true alpha at least 90% of the time. "power" is how often that power law is
called "scaling". With 3 sizes the verdict is always "too few sizes".

    python3 bench/report_calibration.py [--campaigns 200] [--boot 400]

prints a markdown table (quoted in docs/report.md).
"""

from __future__ import annotations

import argparse
import time

from tests.report.calibration import CALIBRATION_HEADER, Noise, calibrate

NOISES = (
    Noise(size=0.0, config=0.01, seed=0.005),  # the figures, offsets as configs
    Noise(size=0.005, config=0.01, seed=0.005),
    Noise(size=0.01, config=0.005, seed=0.005),  # a size-level offset dominates
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=200)
    parser.add_argument("--boot", type=int, default=400)
    args = parser.parse_args()
    started = time.perf_counter()
    print(CALIBRATION_HEADER)
    for noise in NOISES:
        for n_sizes in (3, 4, 5):
            result = calibrate(n_sizes, noise, campaigns=args.campaigns, n_boot=args.boot)
            print(result.row(), flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s, {args.campaigns} campaigns per row")


if __name__ == "__main__":
    main()
