"""`hpotui grid`: the architecture grid of a parameter budget and its extremes.

    hpotui grid 2M                    table of the grid (smallest first) and its extremes
    hpotui grid 200M --features 30    for a dataset with 30 features
    hpotui grid 2B --json             one JSON object: grid, extremes, their count

The extremes are the distinct architectures at min/max d_model, n_layers and n_heads;
there may be fewer than six, and the count says how many.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from engine.errors import UserError
from engine.model.architecture import GridSpec
from engine.model.grid import GridEntry, architecture_grid, extremes, format_count, parse_budget

DEFAULT_FEATURES = 25  # the reference dataset: OHLCV + 20 indicators


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "grid",
        help="list the PatchTST architectures of a parameter budget",
        description="List the architecture grid of a parameter budget and its extremes.",
    )
    parser.add_argument("budget", help="parameter budget, e.g. 100K, 2M, 20M, 1.5B")
    parser.add_argument(
        "--features",
        type=int,
        default=DEFAULT_FEATURES,
        help=f"number of input features (default {DEFAULT_FEATURES})",
    )
    parser.add_argument("--tolerance", type=float, help="relative tolerance (default 0.25)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.features < 1:
        raise UserError(f"--features must be >= 1, got {args.features}", where="command line")
    spec = GridSpec() if args.tolerance is None else replace(GridSpec(), tolerance=args.tolerance)
    grid = architecture_grid(args.budget, args.features, spec)
    edges = extremes(grid, args.budget)
    if args.json:
        print(json.dumps(_as_json(args.budget, args.features, spec, grid, edges)))
    else:
        _print_table(args.budget, args.features, spec, grid, edges)
    return 0


def _as_json(
    budget: str, n_features: int, spec: GridSpec, grid: list[GridEntry], edges: list[GridEntry]
) -> dict[str, Any]:
    index = {entry: i for i, entry in enumerate(grid)}
    return {
        "budget": budget,
        "target_params": parse_budget(budget),
        "n_features": n_features,
        "tolerance": spec.tolerance,
        "size": len(grid),
        "grid": [{"index": i, **e.to_dict()} for i, e in enumerate(grid)],
        "extremes": [{"index": index[e], **e.to_dict()} for e in edges],
        "n_extremes": len(edges),
    }


def _print_table(
    budget: str, n_features: int, spec: GridSpec, grid: list[GridEntry], edges: list[GridEntry]
) -> None:
    target = parse_budget(budget)
    marks = {e: _edge_names(e, grid) for e in edges}
    print(
        f"budget {budget} ({format_count(target)} ±{spec.tolerance:.0%}), "
        f"{n_features} features: {len(grid)} architectures"
    )
    print(
        f"{'#':>4}  {'d_model':>7} {'layers':>6} {'heads':>5} {'d_ff':>6} {'params':>14}  extreme"
    )
    for i, e in enumerate(grid):
        a = e.arch
        print(
            f"{i:>4}  {a.d_model:>7} {a.n_layers:>6} {a.n_heads:>5} {a.d_ff:>6} "
            f"{e.n_params:>14,}  {marks.get(e, '')}"
        )
    print(f"{len(edges)} distinct extremes (of 6 edges):")
    for e in edges:
        print(f"  {e.arch.label:<24} {format_count(e.n_params):>7}  {marks[e]}")


def _edge_names(entry: GridEntry, grid: list[GridEntry]) -> str:
    """Which edges of the grid this entry lies on, e.g. 'max d_model, min n_layers'."""
    names = []
    for field in ("d_model", "n_layers", "n_heads"):
        values = [getattr(e.arch, field) for e in grid]
        value = getattr(entry.arch, field)
        if value == min(values):
            names.append(f"min {field}")
        if value == max(values):
            names.append(f"max {field}")
    return ", ".join(names)
