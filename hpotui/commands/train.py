"""`hpotui train`: train one configuration on a dataset and print its metrics.

    hpotui train --budget 2M --horizon 5 --epochs 30 --test
    hpotui train --arch 64,48,2,256 --learning-rate 3e-4 --json

The one-off run a researcher does to retrain the best configuration of a study. The
architecture is explicit (`--arch d_model,n_layers,n_heads,d_ff`), or the grid entry of
`--budget` closest to the budget, or `--arch-index` into that budget's grid. Every
`TrainParams` field has a flag of the same name (`--learning-rate`, `--warmup-steps`, ...).
Progress goes to stderr (hpotui/commands/train_progress.py: a bar per epoch on a
terminal, one line per finished epoch everywhere); the result (metrics, or JSON with --json) to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import fields
from typing import Any

from engine.errors import UserError

EXIT_OK = 0
EXIT_FAILED = 1

_METRIC_ROWS = (
    ("bce", "BCE"),
    ("base_rate_bce", "BCE of the base rate"),
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("label_rate", "label rate"),
)
_THRESHOLD_ROWS = ("accuracy", "precision", "recall", "f1", "prediction_rate")


def register(sub: Any) -> None:
    from engine.train.config import TrainParams

    parser: argparse.ArgumentParser = sub.add_parser(
        "train",
        help="train one configuration and print its metrics",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model = parser.add_argument_group("architecture (one of)")
    choice = model.add_mutually_exclusive_group()
    choice.add_argument("--budget", help="parameter budget, e.g. 2M: the closest grid entry")
    choice.add_argument("--arch", help="explicit d_model,n_layers,n_heads,d_ff, e.g. 64,48,2,256")
    model.add_argument("--arch-index", type=int, help="index into the budget's grid (hpotui grid)")

    data = parser.add_argument_group("data and labels")
    data.add_argument("--dataset", default="SP500")
    data.add_argument("--tier", default="a25")
    data.add_argument("--version", type=int, default=1)
    data.add_argument("--horizon", type=int, default=1, help="trading days ahead (default 1)")
    data.add_argument("--task", default="threshold_1pct", help="threshold_<X>pct")
    data.add_argument("--basis", choices=("high", "close"), default="high", help="price basis")
    data.add_argument("--context-len", type=int, default=60)
    data.add_argument("--patch-len", type=int, default=10)
    data.add_argument("--stride", type=int, default=5)
    data.add_argument("--split", choices=("contiguous", "chunks"), default="contiguous")
    data.add_argument("--val-fraction", type=float, default=0.15)
    data.add_argument("--test-fraction", type=float, default=0.15)
    data.add_argument("--n-chunks", type=int, default=4)
    data.add_argument("--purge", type=int, help="windows between splits (default: horizon)")
    data.add_argument("--min-val-windows", type=int, default=200)
    data.add_argument("--normalization", choices=("zscore", "revin", "rolling"), default="rolling")

    training = parser.add_argument_group("training (TrainParams)")
    defaults = TrainParams()
    for field in fields(TrainParams):
        default = getattr(defaults, field.name)
        flags = ["--" + field.name.replace("_", "-")]
        if field.name == "learning_rate":
            flags.append("--lr")
        training.add_argument(
            *flags, dest=field.name, type=type(default), default=default, help=f"default {default}"
        )

    run_group = parser.add_argument_group("run")
    run_group.add_argument("--device", default="auto", help="auto (MPS, CUDA, CPU), cpu, cuda, mps")
    run_group.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: the faster of fp32 and bf16, timed once per architecture class on this "
        "machine (engine.train.autotune); bf16 on CUDA GPUs",
    )
    run_group.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    run_group.add_argument(
        "--dropout-sites",
        default="residual",
        metavar="SITES",
        help="where dropout applies: residual (default), reference, or site names joined "
        "by commas (embedding, attention, attention_out, ffn_inner, ffn_out)",
    )
    run_group.add_argument("--test", action="store_true", help="also evaluate the test split")
    run_group.add_argument("--json", action="store_true", help="print the result as JSON")
    run_group.add_argument("--quiet", action="store_true", help="no per-epoch lines on stderr")
    parser.set_defaults(func=run)


def parse_arch(text: str) -> Any:
    from engine.model.architecture import Architecture

    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise UserError(
            f"--arch {text!r} is not four integers",
            where="command line",
            hint="use d_model,n_layers,n_heads,d_ff, e.g. 64,48,2,256",
        )
    return Architecture(*(int(p) for p in parts))


def choose_arch(args: argparse.Namespace, n_features: int, spec: Any) -> Any:
    """The architecture of --arch, --arch-index into the grid, or the grid's closest."""
    from engine.model.grid import architecture_grid, parse_budget

    if args.arch:
        if args.arch_index is not None:
            raise UserError("--arch-index needs --budget, not --arch", where="command line")
        return parse_arch(args.arch)
    budget = args.budget or "2M"
    grid = architecture_grid(
        budget,
        n_features,
        context_len=spec.context_len,
        patch_len=spec.patch_len,
        stride=spec.stride,
    )
    if args.arch_index is not None:
        if not 0 <= args.arch_index < len(grid):
            raise UserError(
                f"--arch-index {args.arch_index} is outside the {budget} grid (0..{len(grid) - 1})",
                where="command line",
                hint=f"see `hpotui grid {budget} --features {n_features}`",
            )
        return grid[args.arch_index].arch
    target = parse_budget(budget)
    return min(grid, key=lambda e: (abs(e.n_params - target), e.n_params)).arch


def data_spec(args: argparse.Namespace) -> Any:
    from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec, parse_task

    try:
        parse_task(args.task)
    except ValueError as error:
        raise UserError(str(error), where="--task") from None
    return DataSpec(
        dataset=args.dataset,
        tier=args.tier,
        version=args.version,
        context_len=args.context_len,
        patch_len=args.patch_len,
        stride=args.stride,
        labels=LabelSpec(task=args.task, horizon=args.horizon, price_basis=args.basis),
        split=SplitSpec(
            mode=args.split,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            n_chunks=args.n_chunks,
            purge=args.purge,
            min_val_windows=args.min_val_windows,
        ),
        normalization=args.normalization,
    )


def run(args: argparse.Namespace) -> int:
    from engine.dataset.build import ensure_dataset
    from engine.dataset.manifest import load_processed
    from engine.dataset.windows import prepare_data
    from engine.model.dropout_sites import PRESETS, parse_sites
    from engine.model.params import count_params
    from engine.train.config import RunOptions, TrainParams
    from engine.train.device import resolve_device, set_threads
    from engine.train.result import TrialDoesNotFit
    from engine.train.trainer import Trainer
    from hpotui.commands.train_progress import EpochProgress

    spec = data_spec(args)
    params = TrainParams(**{f.name: getattr(args, f.name) for f in fields(TrainParams)})
    text = args.dropout_sites.strip()
    try:
        sites = parse_sites(text if text in PRESETS else [s.strip() for s in text.split(",") if s])
    except ValueError as error:
        raise UserError(str(error), where="--dropout-sites") from None
    options = RunOptions(
        device=args.device,
        precision=args.precision,
        threads=args.threads,
        evaluate_test=args.test,
        dropout_sites=sites,
    )
    device = resolve_device(args.device)
    set_threads(args.threads)
    ensure_dataset(spec.dataset, spec.tier, spec.version)
    frame, _entry = load_processed(spec.dataset, spec.tier, spec.version)
    arch = choose_arch(args, frame.shape[1], spec)
    data = prepare_data(frame, spec, device)
    n_params = count_params(arch, data.n_features, spec.context_len, spec.patch_len, spec.stride)

    def note(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    note(
        f"{spec.dataset}/{spec.tier}/v{spec.version}: {len(frame)} rows, {data.n_features} "
        f"features; {spec.labels.task} ({spec.labels.price_basis}), horizon {data.horizon}"
    )
    for info in data.report:
        note("  " + info.line())
    for drift in data.facts.drifts() if data.facts else []:
        note(f"  warning: {drift}")
    note(f"{arch.label}: {n_params:,} parameters on {device}")

    progress: EpochProgress | None = None
    try:
        trainer = Trainer(arch, params, data, options)  # may not fit: TrialDoesNotFit
        progress = EpochProgress(
            params.epochs, trainer.steps_per_epoch, trainer.batch_size, quiet=args.quiet
        )
        result = trainer.run(progress.epoch_ended, progress.step)
    except TrialDoesNotFit as error:
        print(f"hpotui train: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print(json.dumps(_jsonable(result.to_dict()), indent=2))
    else:
        print(format_result(result))
    return EXIT_OK


def _jsonable(value: Any) -> Any:
    """NaN/inf are not JSON: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def format_result(result: Any) -> str:
    stop = "stopped early" if result.stopped_early else "ran all epochs"
    lines = [
        f"best epoch {result.best_epoch} of {result.epochs_run} ({stop}): "
        f"validation BCE {result.value:.4f}  [{result.duration_s:.1f}s, "
        f"{result.n_params:,} params, {result.device} {result.extra.get('precision', '')}, "
        f"micro-batch {result.micro_batch}]"
    ]
    choice = result.extra.get("run_choice")
    if choice:
        threads = "" if choice["threads"] is None else f", {choice['threads']} thread(s)"
        lines.append(
            f"run choice: {choice['precision']}, {choice['attention']} attention{threads} "
            f"({choice['source']})"
        )
    splits = [("validation", result.val_metrics)]
    if result.test_metrics is not None:
        splits.append(("test", result.test_metrics))
    header = f"{'':<24}" + "".join(f"{name:>12}" for name, _ in splits)
    lines += ["", header]
    for key, label in _METRIC_ROWS:
        lines.append(f"{label:<24}" + "".join(f"{m[key]:>12.4f}" for _, m in splits))
    threshold = result.val_metrics["threshold_best_f1"]
    for suffix, title in (("", "at 0.5"), ("_at_best", f"at {threshold:.3f} (best F1 on val)")):
        lines.append(title)
        for key in _THRESHOLD_ROWS:
            values = "".join(f"{m[key + suffix]:>12.4f}" for _, m in splits)
            lines.append(f"  {key.replace('_', ' '):<22}" + values)
    lines.append("predictions")
    for key in ("prob_min", "prob_max", "prob_mean", "prob_std"):
        lines.append(f"  {key[5:]:<22}" + "".join(f"{m[key]:>12.4f}" for _, m in splits))
    for name, metrics in splits:
        if metrics["near_constant"]:
            lines.append(
                f"warning: {name} predictions are near-constant (std {metrics['prob_std']:.2e}):"
                " the model outputs about the same probability for every window"
            )
    return "\n".join(lines)
