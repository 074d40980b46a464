"""How much CPU the hardware monitor costs: the issue asks for < 1% of one core at 1 Hz.

    python bench/monitor_overhead.py [--samples N] [--seconds S]

1. back-to-back: N calls of probe.sample(); CPU time (this process, all threads, plus
   child processes such as pmset/macmon) per sample, and what that is at 1 Hz.
2. real time: the MonitorThread with the policy at 1 Hz for S seconds; CPU time spent
   over wall time (includes thread wake-ups and the policy).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.campaign.model import MonitorSpec
from engine.monitor.factory import make_probe
from engine.monitor.policy import ThermalPolicy
from engine.monitor.sampler import MonitorThread


def cpu_seconds() -> float:
    """This process (all threads) + its children, reaped or still running."""
    own = time.process_time()
    reaped = os.times()
    running = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            running += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return own + reaped.children_user + reaped.children_system + running


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    with make_probe() as probe:
        probe.sample()
        start = cpu_seconds()
        wall = time.perf_counter()
        for _ in range(args.samples):
            probe.sample()
        per_sample = (cpu_seconds() - start) / args.samples
        wall_per = (time.perf_counter() - wall) / args.samples
        print(f"platform: {sys.platform}, cores: {psutil.cpu_count()}")
        print(
            f"back-to-back: {args.samples} samples, {per_sample * 1e3:.3f} ms CPU per sample "
            f"({wall_per * 1e3:.3f} ms wall) -> {per_sample * 100:.3f}% of one core at 1 Hz"
        )

        policy = ThermalPolicy(MonitorSpec())
        start = cpu_seconds()
        wall = time.perf_counter()
        with MonitorThread(probe, policy, lambda s, d: None, interval_s=1.0):
            time.sleep(args.seconds)
        used = cpu_seconds() - start
        elapsed = time.perf_counter() - wall
        print(
            f"real time: MonitorThread at 1 Hz for {elapsed:.1f} s used {used * 1e3:.1f} ms CPU "
            f"-> {used / elapsed * 100:.3f}% of one core"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
