"""Does fusing change what the search finds? The demo campaign, fused against unfused.

    python bench/fused_search.py [--seeds 0,1,2] [--fuse 3] [--workers 2]

Each run is the real demo campaign (`configs/demo.toml`: 8 experiments x 6 trials) run
by `hpotui --batch` in one temporary workspace, once with `fuse = 1` (one trial at a
time) and once with `fuse = K` (groups of K trials sharing an architecture chosen by the
sampler, the rest of their knobs sampled), for each sampler seed. A fixed K is used, not
"auto": on a CPU "auto" mostly keeps the one-trial path (docs/training.md), which would
compare the search with itself.

Printed: for every experiment and seed, the best validation BCE among the first 3 and
among all 6 trials (trial numbers in ask order) of each mode; then, per N, the mean over
experiments and seeds of fused - unfused (negative: the fused search found better) with
its standard error over the (experiment, seed) pairs, and how often each side won.
Campaign wall time is printed too, but on a 2-core CPU fusing does not speed training
(bench/fused_trials.py), so it is not the point here. With two workers the order in
which trials are asked and told varies from run to run, so even the same mode and seed
differ a little: the spread between seeds is the yardstick.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from engine.storage.backend import open_storage  # noqa: E402

CHECKPOINTS = (3, 6)


def demo_config(name: str, seed: int, fuse: int) -> str:
    text = (ROOT / "configs" / "demo.toml").read_text()
    text = re.sub(r'(?m)^name = "demo"', f'name = "{name}"', text)
    text = re.sub(r"(?m)^fuse = .*$", f"fuse = {fuse}", text)
    text = re.sub(r"(?m)^seed = \d+", f"seed = {seed}", text)
    return text


def run_campaign(home: Path, name: str, seed: int, fuse: int, workers: int) -> float:
    config = home / f"{name}.toml"
    config.write_text(demo_config(name, seed, fuse))
    env = {**os.environ, "HPOTUI_HOME": str(home), "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "hpotui.cli", "--batch", str(config), "--workers", str(workers)],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise SystemExit(
            f"{name}: exit {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
        )
    return time.perf_counter() - started


def best_after(home: Path, name: str) -> dict[str, dict[int, float]]:
    """Per experiment: the best complete value among its first N trials, per checkpoint."""
    storage = open_storage(str(home / "outputs" / name / "optuna.journal"))
    out: dict[str, dict[int, float]] = {}
    for summary in optuna.get_all_study_summaries(storage):
        if "." not in summary.study_name or not summary.study_name.startswith(name + "."):
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        counted = [
            t
            for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        ]
        experiment = summary.study_name.split(".", 1)[1]
        out[experiment] = {
            n: min(
                (t.value for t in counted[:n] if t.state == TrialState.COMPLETE and t.value),
                default=math.nan,
            )
            for n in CHECKPOINTS
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fuse", type=int, default=3, help="K of the fused runs (default 3)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    home = Path(tempfile.mkdtemp(prefix="hpotui-fused-search-"))
    print(
        f"demo campaign, seeds {seeds}, fuse 1 vs {args.fuse}, {args.workers} workers, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; workspace {home}",
        flush=True,
    )
    results: dict[tuple[int, int], dict[str, dict[int, float]]] = {}
    for seed in seeds:
        for fuse in (1, args.fuse):
            name = f"s{seed}_f{fuse}"
            wall = run_campaign(home, name, seed, fuse, args.workers)
            results[(seed, fuse)] = best_after(home, name)
            print(f"  seed {seed} fuse {fuse}: campaign {wall:.0f} s", flush=True)
    experiments = sorted(results[(seeds[0], 1)])
    print(f"\n{'experiment':<10} seed  " + "  ".join(f"best@{n} solo   fused" for n in CHECKPOINTS))
    for experiment in experiments:
        for seed in seeds:
            solo, fused = results[(seed, 1)][experiment], results[(seed, args.fuse)][experiment]
            cells = "  ".join(f"    {solo[n]:.4f}  {fused[n]:.4f}" for n in CHECKPOINTS)
            print(f"{experiment:<10} {seed:>4}  {cells}")
    print()
    for n in CHECKPOINTS:
        diffs = [
            results[(seed, args.fuse)][e][n] - results[(seed, 1)][e][n]
            for e in experiments
            for seed in seeds
            if not math.isnan(results[(seed, args.fuse)][e][n] - results[(seed, 1)][e][n])
        ]
        mean = statistics.fmean(diffs)
        se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
        wins = sum(d < 0 for d in diffs)
        print(
            f"best after {n} trials, fused - unfused: {mean:+.4f} ± {se:.4f} (s.e., "
            f"{len(diffs)} experiment x seed pairs); fused better in {wins}, "
            f"unfused in {sum(d > 0 for d in diffs)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
