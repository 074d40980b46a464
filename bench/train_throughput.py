"""Training throughput of PatchTST: hpotui's TrainStep against the reference design.

    python bench/train_throughput.py                 CPU, batch 256, the three 2M archs
    python bench/train_throughput.py --quick         a few seconds
    python bench/train_throughput.py --device cuda   GPU shapes of issue 3, bf16, both
                                                     eager and CUDA-graph TrainStep

For each architecture it trains on windows of the embedded S&P 500 sample (25 features:
the dataset pipeline's a25 tier when it can be built, else the sample's 5 OHLCV columns
tiled to 25, said in the output) and prints samples/s, step time and model-FLOP
utilisation (MFU) against a matmul peak measured in this process. The baseline
(bench/reference_baseline.py: nn.MultiheadAttention layers, sigmoid + BCELoss,
DataLoader batches) runs in the same process, interleaved with hpotui's step in rounds
so both see the same machine load, and the ratio is printed.

On CPU the baseline runs in fp32, as the reference pipeline did, and hpotui runs in fp32
and, on CPUs with AMX, in bf16 too; each MFU is against the matmul peak of its own
precision. `--precision` runs hpotui in that one. On GPUs everything runs in bf16, the
precision of the issue's eager figures.

Equal dropout: hpotui's default `dropout_sites` ("residual": 2 masks per layer) is not
the reference's (attention weights, feed-forward inner and output: 3 masks per layer, one
of them on the (B, H, N, N) attention weights), so part of a ratio against the baseline
is a different regularisation. The `hpotui-refdrop` variant runs hpotui with
`dropout_sites = "reference"` in the precision of the first hpotui variant, and its line
and the closing summary give the ratio at equal dropout. (The attention kernel is
PyTorch's fused one throughout: the per-machine choice of `engine.train.autotune` is
not applied here.)
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from reference_baseline import RefPatchTST, RefTrainer, WindowDataset  # noqa: E402

from engine.model.architecture import Architecture  # noqa: E402
from engine.model.dropout_sites import DEFAULT as RESIDUAL_SITES  # noqa: E402
from engine.model.dropout_sites import PRESETS  # noqa: E402
from engine.model.params import count_params, n_patches  # noqa: E402
from engine.model.patchtst import PatchTST  # noqa: E402
from engine.train.device import cpu_has_amx, resolve_device, set_threads, split_precision  # noqa: E402
from engine.train.step import WARMUP_GRAPH_STEPS, TrainStep, build_optimizer  # noqa: E402

CONTEXT, N_FEATURES = 60, 25
CPU_CASES: list[tuple[tuple[int, ...], int]] = [
    ((64, 48, 2, 256), 256),
    ((64, 32, 8, 256), 256),
    ((384, 2, 8, 768), 256),
]
GPU_CASES: list[tuple[tuple[int, ...], int]] = [
    ((64, 48, 2, 256), 256),
    ((64, 48, 2, 256), 1024),
    ((256, 32, 2, 512), 256),
    ((256, 32, 2, 512), 1024),
    ((2048, 3, 8, 8192), 1024),
    ((1024, 128, 2, 4096), 256),
]


def load_windows(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """(rows, F) features, (n_windows,) labels, (n_windows, T, F) windows on device."""
    try:
        frame, source = _dataset_frame()
    except Exception as error:  # the dataset pipeline may be absent or fail: say so
        frame, source = _csv_frame(), f"sample CSV, OHLCV tiled to 25 ({error.__class__.__name__})"
    values = frame.to_numpy(dtype=np.float64)
    close = frame["Close"].to_numpy(dtype=np.float64) if "Close" in frame else values[:, 3]
    values = (values - values.mean(0)) / (values.std(0) + 1e-12)  # bench only: all rows
    features = torch.tensor(values, dtype=torch.float32)
    n = len(features) - CONTEXT  # each window needs the next day's close for its label
    last = np.arange(CONTEXT - 1, CONTEXT - 1 + n)
    labels = torch.tensor(close[last + 1] >= close[last] * 1.01, dtype=torch.float32)
    windows = features.unfold(0, CONTEXT, 1)[:n].transpose(1, 2).contiguous()  # (N, T, F)
    return features, labels, windows.to(device), source


def _dataset_frame() -> tuple[pd.DataFrame, str]:
    os.environ.setdefault("HPOTUI_HOME", tempfile.mkdtemp(prefix="hpotui-bench-"))
    from engine.dataset.build import ensure_dataset
    from engine.dataset.manifest import load_processed

    entry = ensure_dataset("SP500", "a25", 1)
    frame, _ = load_processed(entry.name, entry.tier, entry.version)
    return frame, f"dataset SP500/a25/v1 ({frame.shape[1]} features)"


def _csv_frame() -> pd.DataFrame:
    with gzip.open(ROOT / "data" / "samples" / "sp500.csv.gz", "rt") as handle:
        raw = pd.read_csv(handle)
    cols = [c for c in raw.columns if c.lower() in ("open", "high", "low", "close", "volume")]
    ohlcv = raw[cols].astype("float64")
    ohlcv.columns = [c.capitalize() for c in cols]
    tiled = pd.concat([ohlcv] * 5, axis=1)
    tiled.columns = [f"{c}_{i}" if i else c for i in range(5) for c in ohlcv.columns]
    return tiled.dropna()


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best FLOP/s of a large square matmul on device: 4096 on GPU, 1024 and 2048 on CPU."""
    sizes = (4096,) if device.type == "cuda" else (1024, 2048)
    return max(_gemm_rate([(s, s, s)], device, dtype, seconds / len(sizes)) for s in sizes)


def gemm_peak(
    arch: Architecture, batch: int, device: torch.device, dtype: torch.dtype, seconds: float
) -> float:
    """Best FLOP/s of this model's own training GEMMs (one layer's set) on device.

    For each Linear (in -> out) of an encoder layer, with M = batch x patches rows: the
    forward (M, in) @ (in, out), the input gradient (M, out) @ (out, in) and the weight
    gradient (out, M) @ (M, in). An attainable ceiling for these shapes, lower than the
    square peak when a dimension is small (d_model 64).
    """
    m = batch * n_patches(CONTEXT, 10, 5)
    d, ff = arch.d_model, arch.d_ff
    shapes = []
    for k, n in ((d, 3 * d), (d, d), (d, ff), (ff, d)):
        shapes += [(m, k, n), (m, n, k), (n, m, k)]
    return _gemm_rate(shapes, device, dtype, seconds)


def _gemm_rate(
    shapes: list[tuple[int, int, int]], device: torch.device, dtype: torch.dtype, seconds: float
) -> float:
    """Best FLOP/s over repeated rounds of the (M, K, N) matmuls, all run each round."""
    pairs = [
        (
            torch.randn(m, k, device=device, dtype=dtype),
            torch.randn(k, n, device=device, dtype=dtype),
        )
        for m, k, n in shapes
    ]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    reps = 10 if device.type == "cuda" else 2
    for a, b in pairs:  # warm-up: first calls pick kernels and fault in pages
        a @ b
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        _sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            for a, b in pairs:
                a @ b
        _sync(device)
        best = max(best, reps * flops / (time.perf_counter() - t))
    return best


def flops_per_sample(arch: Architecture) -> float:
    """Matmul FLOPs of one training sample (forward + backward = 3 x forward)."""
    n = n_patches(CONTEXT, 10, 5)
    d, ff = arch.d_model, arch.d_ff
    layer = 2 * n * (4 * d * d + 2 * d * ff) + 2 * 2 * n * n * d
    forward = arch.n_layers * layer + 2 * n * 10 * N_FEATURES * d + 2 * n * d
    return 3.0 * forward


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ours(
    arch: Architecture,
    windows: torch.Tensor,
    labels: torch.Tensor,
    batch: int,
    dtype: torch.dtype | None,
    graph: bool,
    compile_model: bool,
    sites: tuple[str, ...] = RESIDUAL_SITES,
) -> Callable[[], object]:
    device = windows.device
    with device:  # built in place: the 1.6B model's CPU initialisation takes 16 s here
        model = PatchTST(arch, N_FEATURES, dropout_sites=sites)
    model_dtype, dtype = split_precision(device, dtype)  # as the trainer: CPU bf16 model
    model = model.to(model_dtype)
    if compile_model:
        model = torch.compile(model)  # type: ignore[assignment]
    optimizer = build_optimizer(model, 3e-4, 1e-4, capturable=graph)
    step = TrainStep(model, optimizer, grad_clip=1.0, autocast_dtype=dtype, cuda_graph=graph)
    y_all = labels.to(device)
    generator = torch.Generator(device=device).manual_seed(0)

    def run() -> object:
        index = torch.randint(0, len(y_all), (batch,), device=device, generator=generator)
        return step(windows[index], y_all[index])

    return run


def _baseline(
    arch: Architecture,
    features: torch.Tensor,
    labels: torch.Tensor,
    batch: int,
    device: torch.device,
    dtype: torch.dtype | None,
) -> Callable[[], object]:
    with device:
        model = RefPatchTST(arch.d_model, arch.n_layers, arch.n_heads, arch.d_ff, N_FEATURES)
    trainer = RefTrainer(model, WindowDataset(features, labels, CONTEXT), batch, device, dtype)
    return trainer.step


def _time(run: Callable[[], object], steps: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        run()
    _sync(device)
    return (time.perf_counter() - start) / steps


def bench_case(
    arch: Architecture,
    batch: int,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, str],
    args: argparse.Namespace,
    peaks: dict[torch.dtype, float],
    precisions: dict[str, torch.dtype | None],
) -> dict[str, float]:
    """`precisions`: variant name -> training dtype, None for fp32 ("baseline" is the
    reference design, autocast in that dtype; "hpotui-refdrop" hpotui with the reference's
    dropout sites). Returns each variant's samples/s."""
    features, labels, windows, _ = data
    device = windows.device
    torch.manual_seed(0)
    builders: dict[str, Callable[[], Callable[[], object]]] = {}
    dtypes = dict(precisions)  # and the CUDA-graph variants'
    for name, dtype in precisions.items():
        if name == "baseline":
            builders[name] = partial(_baseline, arch, features, labels, batch, device, dtype)
            continue
        sites = PRESETS["reference"] if name == "hpotui-refdrop" else RESIDUAL_SITES
        builders[name] = partial(
            _ours, arch, windows, labels, batch, dtype, False, args.compile, sites
        )
        if args.cuda_graph and device.type == "cuda":
            builders[f"{name}+graph"] = partial(
                _ours, arch, windows, labels, batch, dtype, True, args.compile, sites
            )
            dtypes[f"{name}+graph"] = dtype
    setup: dict[str, tuple[float, int]] = {}
    times: dict[str, list[float]] = {name: [] for name in builders}

    def warm_up(name: str, run: Callable[[], object]) -> None:  # incl. capture / compile
        warm = WARMUP_GRAPH_STEPS + 1 if name.endswith("graph") else 2 if args.compile else 1
        setup[name] = (_time(run, warm, device) * warm, warm)

    if device.type == "cpu":  # interleaved rounds: load changes hit every variant alike
        variants = {name: build() for name, build in builders.items()}
        for name, run in variants.items():
            warm_up(name, run)
        for _ in range(args.rounds):
            for name, run in variants.items():
                times[name].append(_time(run, args.steps, device))
    else:  # one model at a time: the large GPU shapes do not fit twice
        for name, build in builders.items():
            run = build()
            warm_up(name, run)
            times[name] = [_time(run, args.steps, device) for _ in range(args.rounds)]
            del run
            if device.type == "cuda":
                torch.cuda.empty_cache()
    flops = flops_per_sample(arch)
    own_peaks = {
        dtype: gemm_peak(arch, batch, device, dtype, 0.2 if args.quick else 0.5) for dtype in peaks
    }
    n_train = int(0.7 * len(labels))
    base_sps = None
    rates: dict[str, float] = {}
    for name, samples in times.items():
        dtype = dtypes[name] or torch.float32
        step_s = statistics.median(samples)
        sps = batch / step_s
        rates[name] = sps
        mfu, own_mfu = flops * sps / peaks[dtype], flops * sps / own_peaks[dtype]
        spent, warm = setup[name]
        overhead = max(0.0, spent - warm * step_s)  # compile / capture / first-call cost
        label = f"{name} {'bf16' if dtype == torch.bfloat16 else 'fp32'}"
        line = (
            f"{arch.label:<22} batch {batch:>5} {label:<19} {sps:>8,.0f} samples/s "
            f"{step_s * 1e3:>7.1f} ms/step  MFU {mfu:6.1%} ({own_mfu:6.1%} of own-GEMM peak "
            f"{own_peaks[dtype] / 1e9:,.0f})  setup {overhead:5.1f}s"
        )
        if name == "baseline":
            base_sps = sps
        elif base_sps:
            equal = " (equal dropout)" if name.startswith("hpotui-refdrop") else ""
            line += f"  x{sps / base_sps:.2f} baseline{equal}"
        if name != "baseline":  # a 50-epoch trial on the embedded data, setup included
            total = 50 * (n_train // batch) * batch
            line += f"  50-epoch {total / (total / sps + overhead):,.0f} samples/s"
        print(line, flush=True)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--quick", action="store_true", help="a few seconds: 1 round, 1 step")
    parser.add_argument("--steps", type=int, default=2, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--batch", type=int, nargs="*", help="override the batch sizes")
    parser.add_argument("--arch", nargs="*", help="d_model,n_layers,n_heads,d_ff (override)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        help="hpotui's precision (default: CPU fp32, and bf16 too where AMX; GPU bf16)",
    )
    parser.add_argument("--cuda-graph", action="store_true", help="also time the CUDA-graph step")
    parser.add_argument("--compile", action="store_true", help="torch.compile hpotui's model")
    parser.add_argument("--no-baseline", action="store_true", help="skip the reference design")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 1, 1
    set_threads(args.threads)
    device = resolve_device(args.device)
    bf16 = torch.bfloat16
    if device.type == "cpu":  # the baseline in fp32, as the reference ran
        precisions: dict[str, torch.dtype | None] = {"baseline": None}
        if args.precision is None:
            precisions["hpotui"] = None
            if cpu_has_amx():
                precisions["hpotui-amx"] = bf16
        else:
            precisions["hpotui"] = bf16 if args.precision == "bf16" else None
    else:
        dtype = None if args.precision == "fp32" else bf16
        precisions = {"baseline": dtype, "hpotui": dtype}
    precisions["hpotui-refdrop"] = precisions["hpotui"]  # equal dropout, equal precision
    if args.no_baseline:
        precisions.pop("baseline")
    cases = GPU_CASES if device.type == "cuda" else CPU_CASES
    if args.arch:
        cases = [(tuple(int(v) for v in a.split(",")), b) for a in args.arch for b in (256,)]
    if args.batch:
        cases = list(dict.fromkeys((a, b) for a, _ in cases for b in args.batch))
    started = time.perf_counter()
    data = load_windows(device)
    seconds = 0.3 if args.quick else 1.0
    peaks = {
        d or torch.float32: matmul_peak(device, d or torch.float32, seconds)
        for d in precisions.values()
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    shown = ", ".join(f"{'bf16' if d == bf16 else 'fp32'} {p / 1e9:,.0f}" for d, p in peaks.items())
    print(
        f"device {name}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"data: {data[3]}, {len(data[1])} windows; matmul peak GFLOP/s: {shown}"
    )
    summary = []
    for shape, batch in cases:
        arch = Architecture(*shape)
        params = count_params(arch, N_FEATURES)
        print(f"-- {arch.label} ({params / 1e6:.2f}M params)", flush=True)
        rates = bench_case(arch, batch, data, args, peaks, precisions)
        if "baseline" in rates:
            summary.append(
                f"{arch.label} b{batch}: x{rates['hpotui'] / rates['baseline']:.2f} "
                f"(equal dropout x{rates['hpotui-refdrop'] / rates['baseline']:.2f})"
            )
    if summary:
        print("hpotui/reference samples/s: " + "; ".join(summary))
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
