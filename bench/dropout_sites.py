"""Step cost of each `dropout_sites` setting: what dropout placement costs per step.

    python bench/dropout_sites.py                  the three 2M CPU architectures, batch 256
    python bench/dropout_sites.py --quick          one small architecture, a few seconds
    python bench/dropout_sites.py --precision bf16 --threads 1

For each architecture it builds hpotui's model and TrainStep once per setting (no
dropout, "residual", "reference"), all at dropout 0.1, and times optimizer steps on
random windows in interleaved rounds (load hits each setting alike); it prints the
median ms per step and each setting's cost over no dropout. docs/model.md quotes it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.model.architecture import Architecture
from engine.model.dropout_sites import PRESETS
from engine.model.patchtst import PatchTST
from engine.train.device import resolve_device, set_threads, split_precision
from engine.train.step import TrainStep, build_optimizer

CASES = [(64, 48, 2, 256), (64, 32, 8, 256), (384, 2, 8, 768)]
SETTINGS: dict[str, tuple[str, ...]] = {"none": (), **PRESETS}


def make_step(
    arch: Architecture, sites: tuple[str, ...], device: torch.device, dtype: torch.dtype | None
) -> TrainStep:
    model_dtype, autocast = split_precision(device, dtype)
    model = PatchTST(arch, 25, dropout=0.1, dropout_sites=sites).to(device, model_dtype)
    optimizer = build_optimizer(model, 3e-4, 1e-4)
    return TrainStep(model, optimizer, grad_clip=1.0, autocast_dtype=autocast)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--arch", nargs="*", help="d_model,n_layers,n_heads,d_ff (override)")
    parser.add_argument("--quick", action="store_true", help="d64-L4-h4, 3 rounds")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    device = resolve_device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else None
    cases = [tuple(int(v) for v in a.split(",")) for a in args.arch] if args.arch else CASES
    if args.quick:
        cases, args.rounds = [(64, 4, 4, 256)], 3
    print(
        f"device {device.type}, {torch.get_num_threads()} threads, {args.precision}, "
        f"batch {args.batch}, dropout 0.1, median of {args.rounds} interleaved rounds"
    )
    x = torch.randn(args.batch, 60, 25, device=device)
    y = (torch.rand(args.batch, device=device) < 0.5).float()
    for shape in cases:
        arch = Architecture(*shape)
        steps = {name: make_step(arch, sites, device, dtype) for name, sites in SETTINGS.items()}
        for step in steps.values():  # warm-up: kernel choice, page faults
            step(x, y)
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                started = time.perf_counter()
                step(x, y)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times[name].append(time.perf_counter() - started)
        base = statistics.median(times["none"])
        cells = []
        for name, samples in times.items():
            ms = statistics.median(samples) * 1e3
            extra = "" if name == "none" else f" ({ms / (base * 1e3) - 1:+.0%})"
            cells.append(f"{name} {ms:,.1f} ms{extra}")
        print(f"{arch.label:<20} " + ", ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
