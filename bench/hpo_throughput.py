"""Throughput of the engine: trials per hour and CPU use, workers=1 against workers=auto.

    python bench/hpo_throughput.py [--trials 16] [--budget 20K] [--epochs 6]
                                   [--device cpu|cuda|mps|auto] [--hide-cuda]
                                   [--runs 1,auto[,auto/auto]]

Each run is a fresh campaign of small-model experiments in a temporary workspace (the
embedded S&P 500 data is built once), run by the real engine (`python -m engine`) with
the given --workers (and `fuse`: a run "W/F" sets fuse = F, e.g. "auto/auto" for
workers=auto with fused groups; plain "W" keeps fuse = 1). Trials per hour count finished trials (complete + pruned + failed)
between the first trial start and the engine's Bye; CPU utilisation is the machine's
average over the same window (psutil), so other load on the machine shows up too;
"campaign cpu %" is the share of the machine used by the engine and its workers.
Each worker's start (torch import, data preparation: a few seconds) falls inside the
window, so very short runs (a few seconds of training) favour fewer workers; the
defaults train long enough for the steady state to dominate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[campaign]
name = "{name}"

[defaults]
dataset = "SP500"
tier = "a25"
task = "threshold_1pct"
n_trials = {per_experiment}
forced_extremes = false
device = "{device}"
precision = "auto"
fuse = {fuse}

[defaults.params]
learning_rate = {{ log_uniform = [3e-4, 3e-3] }}
batch_size = {{ categorical = [128, 256] }}
dropout = {{ uniform = [0.0, 0.2] }}
epochs = {epochs}
patience = {epochs}

[defaults.sampler]
kind = "random"
seed = 0

[defaults.pruner]
kind = "none"

[defaults.architecture]
d_model = [16, 32, 64]
n_layers = [1, 2, 4]
n_heads = [2, 4]
ff_ratio = [2, 4]

[grid]
budgets = ["{budget}"]
horizons = [1, 2]
"""


class CpuMeter:
    """Average machine CPU utilisation while running (sampled every 0.5 s), and the share
    of the machine used by the campaign's own processes (engine + workers), which stays
    meaningful when other load shares the machine."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.cpu_seconds: dict[int, float] = {}
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        psutil.cpu_percent(None)
        self.started = time.monotonic()
        self._tree()
        self.base = dict(self.cpu_seconds)
        while not self._stop.wait(0.5):
            self.samples.append(psutil.cpu_percent(None))
            self._tree()
        self.ended = time.monotonic()

    def _tree(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in procs:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            self.cpu_seconds[proc.pid] = t.user + t.system

    def campaign_percent(self) -> float:
        used = sum(v - self.base.get(k, 0.0) for k, v in self.cpu_seconds.items())
        wall = (self.ended - self.started) * (psutil.cpu_count() or 1)
        return 100.0 * used / wall if wall > 0 else float("nan")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.samples) / len(self.samples) if self.samples else float("nan")


def run_once(workspace: Path, run: str, args: argparse.Namespace) -> dict[str, object]:
    """One campaign; `run` is a --workers value, or "WORKERS/FUSE" (e.g. "auto/auto")."""
    workers, _, fuse = run.partition("/")
    fuse = fuse or "1"
    name = f"bench_w{workers}_f{fuse}_{int(time.time())}"
    config = workspace / f"{name}.toml"
    config.write_text(
        CONFIG.format(
            name=name,
            per_experiment=max(1, args.trials // 2),
            device=args.device,
            epochs=args.epochs,
            budget=args.budget,
            fuse=fuse if fuse.isdigit() else f'"{fuse}"',
        )
    )
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "HPOTUI_HOME": str(workspace), "PYTHONPATH": path}
    if args.hide_cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, "-m", "engine", "--config", str(config), "--workers", workers]
    cmd += ["--no-monitor"]
    errors = workspace / f"{name}.stderr"  # shown if the engine fails
    with errors.open("w") as stderr:  # the child keeps its own copy of the handle
        proc = subprocess.Popen(
            cmd, cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    meter = CpuMeter(proc.pid)
    first_start: float | None = None
    finished = 0
    hello: dict[str, object] = {}
    log = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        kind = event["type"]
        if kind == "hello":
            hello = event
        elif kind == "log" and "worker(s)" in event["message"]:
            log = event["message"]
        elif kind == "trial_started" and first_start is None:
            first_start = time.monotonic()
            meter.start()
        elif kind == "trial_finished" and event["state"] != "interrupted":
            finished += 1
        elif kind == "error":
            print("engine error:", event["message"], file=sys.stderr)
        elif kind == "bye":
            break
    end = time.monotonic()
    if first_start is not None:  # wall clock, to match GPU logs (nvidia-smi dmon -o T)
        since = time.strftime("%H:%M:%S", time.localtime(time.time() - (end - first_start)))
        print(
            f"run {run}: {finished} trials from {since} to {time.strftime('%H:%M:%S')}, "
            f"{finished / (end - first_start) * 3600:.0f} trials/h",
            flush=True,
        )
    cpu = meter.stop() if first_start is not None else float("nan")
    proc.wait()
    if proc.returncode or not finished:
        tail = "\n".join(errors.read_text().splitlines()[-15:])
        print(f"engine (--workers {workers}) exit {proc.returncode}:\n{tail}", file=sys.stderr)
    elapsed = end - (first_start or end)
    return {
        "workers": run,
        "resolved": f"{hello.get('workers')} ({log})",
        "trials": finished,
        "seconds": elapsed,
        "trials_per_hour": finished / elapsed * 3600 if elapsed > 0 else float("nan"),
        "cpu_percent": cpu,
        "campaign_cpu_percent": meter.campaign_percent() if first_start is not None else cpu,
        "exit": proc.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16, help="trials per run (2 experiments)")
    parser.add_argument("--budget", default="20K")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--hide-cuda", action="store_true", help="CUDA_VISIBLE_DEVICES=''")
    parser.add_argument(
        "--runs",
        default="1,auto",
        help='comma-separated --workers values, each optionally "/FUSE" (e.g. 1,auto,auto/auto)',
    )
    parser.add_argument("--workspace", help="reuse this workspace (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hpotui-bench-") as tmp:
        workspace = Path(args.workspace or tmp)
        (workspace / "outputs").mkdir(parents=True, exist_ok=True)
        print(
            f"machine: {psutil.cpu_count()} logical cores; device {args.device}"
            + (" (CUDA hidden)" if args.hide_cuda else "")
        )
        results = [run_once(workspace, w.strip(), args) for w in args.runs.split(",")]
    print(
        f"{'workers':<8} {'resolved':<40} {'trials':>6} {'s':>7} {'trials/h':>9} "
        f"{'cpu %':>6} {'campaign cpu %':>15}"
    )
    for r in results:
        print(
            f"{r['workers']!s:<8} {r['resolved']!s:<40} {r['trials']!s:>6} "
            f"{r['seconds']:>7.1f} {r['trials_per_hour']:>9.0f} {r['cpu_percent']:>6.1f} "
            f"{r['campaign_cpu_percent']:>15.1f}"
        )
    base = float(str(results[0]["trials_per_hour"]))
    for r in results[1:]:
        rate = float(str(r["trials_per_hour"]))
        print(
            f"speed-up of workers={r['workers']} over workers={results[0]['workers']}: "
            f"{rate / base:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
