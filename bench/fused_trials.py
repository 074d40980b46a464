"""Fused training of same-shape trials against today's one-trial path: trials/h, samples/s.

    python bench/fused_trials.py            deep 2M archs (2 epochs) and demo budgets
    python bench/fused_trials.py --quick    fewer windows and K values: a few minutes
    python bench/fused_trials.py --device cuda      the same on a GPU (CUDA-graph steps)

Every run trains real trials on the embedded S&P 500 data (dataset SP500/a25, 1-day 1%
labels) in this process: the solo path is `engine.train.trainer.train_trial` one trial
after another (today's code path: `fuse = 1`), the fused path is
`engine.train.fused_trainer.train_group` with K trials of one architecture (different
seeds, learning rates and dropout, as a search would give them). "auto" is the K that
`engine.train.fuse_size.choose_fuse` picks (memory estimate + short calibration; its
time is printed apart and not counted in the group's). Cases:

- deep: d64-L48-h2 and d64-L32-h8 (2M parameters), batch 256, 2 epochs, in the
  precision `--deep-precision` (default bf16: the issue's "today's solo bf16 path");
- demo: one architecture per demo budget (20K, 50K, 100K: the middle of each budget's
  grid of configs/demo.toml), batch 256, 4 epochs (2 with --quick), precision auto, on
  the full training split (a demo trial's real shape; --quick cuts only the deep cases'
  data, whose steps are compute-bound whatever their number).

Threads: `--threads` per process (default 1). With workers=auto a CPU campaign runs one
worker per core, 1 thread each, so today's workers=auto trials/h is (cores x) the 1-thread
solo figure and a fused campaign's is (cores x) the 1-thread fused figure: the ratio at 1
thread is the campaign's ratio when the cores do not slow each other down (memory
bandwidth is shared, so on a busy machine the gain can be smaller).

Timings on a shared machine are noisy: each K is run after the solo trials of its case,
in the same process, and every row also gives the ratio in CPU seconds of this process
("cpu"), which other load on the machine does not inflate. The last line is the ratio
for the demo budgets, `fused/solo trials-per-hour: X.XXx` (fused auto over solo, summed
over the budgets, wall time), after the same ratio in CPU seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from engine.dataset.spec import DataSpec  # noqa: E402
from engine.dataset.windows import PreparedData, WindowSet, prepare_data  # noqa: E402
from engine.model.architecture import Architecture, GridSpec  # noqa: E402
from engine.model.grid import architecture_grid  # noqa: E402
from engine.train.autotune import apply_run_choice  # noqa: E402
from engine.train.config import RunOptions, TrainParams  # noqa: E402
from engine.train.device import resolve_device, set_threads  # noqa: E402
from engine.train.fuse_size import choose_fuse, max_auto  # noqa: E402
from engine.train.fused_trainer import train_group  # noqa: E402
from engine.train.trainer import train_trial  # noqa: E402

DEEP = [Architecture(64, 48, 2, 256), Architecture(64, 32, 8, 256)]
DEMO_GRID = GridSpec(d_model=(16, 32, 64), n_layers=(1, 2, 4, 6), n_heads=(2, 4), ff_ratio=(2, 4))
DEMO_BUDGETS = ("20K", "50K", "100K")


def load_data(device: torch.device, train_windows: int | None = None) -> PreparedData:
    os.environ.setdefault("HPOTUI_HOME", tempfile.mkdtemp(prefix="hpotui-bench-"))
    from engine.dataset.build import ensure_dataset
    from engine.dataset.manifest import load_processed

    entry = ensure_dataset("SP500", "a25", 1)
    frame, _ = load_processed(entry.name, entry.tier, entry.version)
    data = prepare_data(frame, DataSpec(), device)
    return data if train_windows is None else cut(data, train_windows)


def cut(data: PreparedData, n: int) -> PreparedData:
    """The most recent n training windows and a validation split of the same size."""
    train, val = data.train, data.val
    cut = WindowSet("train", train.x[-n:], train.y[-n:], train.days[-n:])
    val = WindowSet("val", val.x[:n], val.y[:n], val.days[:n])
    return dataclasses.replace(data, train=cut, val=val)


def members(k: int, epochs: int, batch: int) -> list[TrainParams]:
    """K trials of a search: their own seeds, rates and dropout; shared epochs and batch."""
    return [
        TrainParams(
            learning_rate=3e-4 * (1.6**i),
            epochs=epochs,
            batch_size=batch,
            weight_decay=1e-4,
            warmup_steps=20 * (i % 2),
            dropout=0.05 * (i % 4),
            patience=epochs,  # every trial runs all its epochs: same work per trial
            seed=i,
        )
        for i in range(k)
    ]


@dataclasses.dataclass
class Row:
    label: str
    k: int
    seconds: float
    trials: int
    samples: int
    cpu_seconds: float = math.nan

    @property
    def trials_per_h(self) -> float:
        return 3600 * self.trials / self.seconds

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds


def run_case(
    arch: Architecture,
    data: PreparedData,
    options: RunOptions,
    epochs: int,
    batch: int,
    ks: list[int],
    solo_trials: int,
) -> tuple[Row, list[Row]]:
    steps = len(data.train) // min(batch, len(data.train))
    per_trial = epochs * steps * min(batch, len(data.train))
    warm_run_choices(arch, data, options, batch, [1, *ks, max_auto(data.device)])
    # untimed: an architecture's first trial in a process pays one-time costs (kernel
    # selection, lazy loading; on a GPU ~0.5 s), which would flatter every fused row
    train_trial(arch, members(1, 1, batch)[0], data, options)
    started, cpu = time.perf_counter(), time.process_time()
    for params in members(solo_trials, epochs, batch):
        train_trial(arch, params, data, options)
    solo = Row(
        "solo",
        1,
        time.perf_counter() - started,
        solo_trials,
        solo_trials * per_trial,
        time.process_time() - cpu,
    )
    print(_line(arch, solo, solo), flush=True)
    rows = []
    shape = _shape(data)
    # as a campaign sizes a group: in the precision its solo trials run with
    dtype = apply_run_choice(arch, data.n_features, batch, data.device, options, **shape).dtype
    calibrating = time.perf_counter()
    choice = choose_fuse(
        arch,
        data.n_features,
        batch,
        data.device,
        dtype,
        dropout_sites=options.dropout_sites,  # as engine.worker.trial_group sizes a group
        **shape,
    )
    calibration_s = time.perf_counter() - calibrating
    print(
        f"  auto: K={choice.k} (memory allows {choice.memory_bound}; calibration "
        f"{calibration_s:.1f} s, step s by K {choice.to_dict()['step_s']})",
        flush=True,
    )
    for label, k in [*((f"K={k}", k) for k in ks), ("auto", choice.k)]:
        started, cpu = time.perf_counter(), time.process_time()
        if k == 1 and label == "auto":  # a campaign runs a group of one on the solo path
            for params in members(1, epochs, batch):
                train_trial(arch, params, data, options)
        else:
            outcomes = train_group(arch, members(k, epochs, batch), data, options)
            assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
        wall = time.perf_counter() - started
        row = Row(label, k, wall, k, k * per_trial, time.process_time() - cpu)
        rows.append(row)
        print(_line(arch, row, solo), flush=True)
    return solo, rows


def warm_run_choices(
    arch: Architecture, data: PreparedData, options: RunOptions, batch: int, ks: list[int]
) -> None:
    """Time and cache the run choices (precision, threads, attention kernel) of the solo
    trial and of every group size first, as a campaign's cache holds them after its
    first trials, so no row's time includes a calibration."""
    shape = _shape(data)
    started = time.perf_counter()
    for k in sorted(set(ks)):
        apply_run_choice(arch, data.n_features, k * batch, data.device, options, **shape)
    print(f"  run choices for K in {sorted(set(ks))}: {time.perf_counter() - started:.1f} s")


def _shape(data: PreparedData) -> dict[str, int]:
    """The window shape keywords of the memory estimate, the run choice and the fuse size."""
    spec = data.spec
    return {"context_len": spec.context_len, "patch_len": spec.patch_len, "stride": spec.stride}


def _line(arch: Architecture, row: Row, solo: Row) -> str:
    cpu_ratio = (solo.cpu_seconds / solo.trials) / (row.cpu_seconds / row.trials)
    return (
        f"{arch.label:>20} {row.label:>8} trials/h {row.trials_per_h:9.0f}  "
        f"samples/s {row.samples_per_s:8.0f}  vs solo {row.trials_per_h / solo.trials_per_h:5.2f}x"
        f" (cpu {cpu_ratio:4.2f}x)  ({row.trials} trials in {row.seconds:.1f} s, "
        f"{row.cpu_seconds:.1f} cpu-s)"
    )


def demo_archs() -> list[Architecture]:
    return [
        (grid := architecture_grid(budget, 25, DEMO_GRID))[len(grid) // 2].arch
        for budget in DEMO_BUDGETS
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--deep-precision", default="bf16", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--skip-deep", action="store_true")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cpu":
        set_threads(args.threads)
    quick = args.quick
    full_ks = [1, 2, 4, 8, *([16] if max_auto(device) >= 16 else [])]
    data = load_data(device, None)
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"train windows {len(data.train)}, val {len(data.val)}",
        flush=True,
    )
    # untimed: the first trial of a process pays one-time costs (allocator, kernels)
    options = RunOptions(str(device), threads=args.threads if device.type == "cpu" else None)
    train_trial(demo_archs()[0], members(1, 1, 256)[0], cut(data, 512), options)
    if not args.skip_deep:
        deep_data = cut(data, 512) if quick else data
        print(
            f"\ndeep 2M architectures, batch 256, 2 epochs, {args.deep_precision}, "
            f"{len(deep_data.train)} train windows{' (--quick: cut)' if quick else ''}:"
        )
        deep_options = dataclasses.replace(options, precision=args.deep_precision)
        for arch in DEEP:
            run_case(arch, deep_data, deep_options, 2, 256, [2] if quick else full_ks, 1)
    epochs = 2 if quick else 4
    print(f"\ndemo budgets, batch 256, {epochs} epochs, precision auto:")
    solo_s = fused_s = solo_cpu = fused_cpu = 0.0
    for arch in demo_archs():
        solo, rows = run_case(
            arch,
            data,
            dataclasses.replace(options, precision="auto"),
            epochs,
            256,
            [2, 4] if quick else full_ks,
            2,
        )
        auto = rows[-1]
        solo_s += solo.seconds / solo.trials
        fused_s += auto.seconds / auto.trials
        solo_cpu += solo.cpu_seconds / solo.trials
        fused_cpu += auto.cpu_seconds / auto.trials
    print(f"fused/solo trials-per-cpu-hour: {solo_cpu / fused_cpu:.2f}x")
    print(f"fused/solo trials-per-hour: {solo_s / fused_s:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
