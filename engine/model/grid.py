"""Architecture grid for a parameter budget, and its extremes.

The grid is every (d_model, n_layers, n_heads, d_ff) from the spec's value lists with
n_heads dividing d_model and d_ff = ratio * d_model, whose exact parameter count is
within the tolerance of the budget. With 25 features and the reference lists it gives
80, 75, 125 and 75 architectures for 2M, 20M, 200M and 2B, as the reference study had.

Extremes are the architectures that exist in the grid at min/max d_model, min/max
n_layers and min/max n_heads, de-duplicated: there may be fewer than six, and the count
is reported (the reference believed it forced six when only four existed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import UserError
from engine.model.architecture import Architecture, GridSpec
from engine.model.params import count_params

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([KMBG]?)\s*$", re.IGNORECASE)


def parse_budget(text: str) -> int:
    """'100K' -> 100000, '2M', '1.5B', '2B', '250000'. Bad text -> UserError naming it."""
    match = _BUDGET.match(str(text))
    if not match:
        raise UserError(
            f"cannot read parameter budget {text!r}",
            where="budget",
            hint="write a number with an optional K, M or B suffix, e.g. 100K, 2M, 1.5B",
        )
    value = round(float(match.group(1)) * _SUFFIX[match.group(2).upper()])
    if value < 1:
        raise UserError(f"parameter budget {text!r} must be at least 1", where="budget")
    return value


def format_count(n: int) -> str:
    """1_234_567 -> '1.23M' (for messages and tables)."""
    for suffix, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


@dataclass(frozen=True)
class GridEntry:
    """One architecture of a budget's grid and its exact parameter count."""

    arch: Architecture
    n_params: int

    def to_dict(self) -> dict[str, int | str]:
        return {**self.arch.to_dict(), "n_params": self.n_params, "label": self.arch.label}


def _candidates(spec: GridSpec) -> list[Architecture]:
    return [
        Architecture(d, layers, heads, ratio * d)
        for d in spec.d_model
        for layers in spec.n_layers
        for heads in spec.n_heads
        if d % heads == 0
        for ratio in spec.ff_ratio
    ]


def architecture_grid(
    budget: str,
    n_features: int,
    spec: GridSpec = GridSpec(),
    context_len: int = 60,
    patch_len: int = 10,
    stride: int = 5,
) -> list[GridEntry]:
    """Every architecture of the spec within tolerance of the budget, smallest first.

    Ties in size are ordered by (d_model, n_layers, n_heads, d_ff), so the order (and an
    index into it) is stable. An empty grid is a UserError naming the budget and the
    nearest counts the spec can reach.
    """
    target = parse_budget(budget)
    if not 0 <= spec.tolerance < 1:
        raise UserError(f"tolerance must be in [0, 1), got {spec.tolerance}", where="grid")
    low, high = target * (1 - spec.tolerance), target * (1 + spec.tolerance)
    sized = [
        GridEntry(arch, count_params(arch, n_features, context_len, patch_len, stride))
        for arch in _candidates(spec)
    ]
    grid = sorted((e for e in sized if low <= e.n_params <= high), key=_order)
    if grid:
        return grid
    below = max((e.n_params for e in sized if e.n_params < low), default=None)
    above = min((e.n_params for e in sized if e.n_params > high), default=None)
    nearest = ", ".join(
        f"{side} {format_count(n)}"
        for side, n in (("below", below), ("above", above))
        if n is not None
    )
    raise UserError(
        f"no architecture within ±{spec.tolerance * 100:g}% of budget {budget} "
        f"({format_count(target)} parameters, {n_features} features); "
        f"nearest achievable: {nearest or 'none'}",
        where="budget",
        hint="pick a budget near an achievable count, widen the tolerance or the value lists",
    )


def _order(entry: GridEntry) -> tuple[int, int, int, int, int]:
    a = entry.arch
    return (entry.n_params, a.d_model, a.n_layers, a.n_heads, a.d_ff)


def extremes(grid: list[GridEntry], budget: str | None = None) -> list[GridEntry]:
    """Distinct grid entries at min/max d_model, min/max n_layers, min/max n_heads.

    For each of the six edges, the entries on that edge are many; the one chosen is the
    closest to the budget (when given, else to the grid's median size), then the smaller,
    then the first in grid order. The result keeps edge order (min d_model, max d_model,
    min layers, max layers, min heads, max heads) without repeats, so `len()` is the
    number of distinct extremes, which may be under six.
    """
    if not grid:
        return []
    if budget is not None:
        target = parse_budget(budget)
    else:
        target = sorted(e.n_params for e in grid)[len(grid) // 2]
    index = {e: i for i, e in enumerate(grid)}
    chosen: list[GridEntry] = []
    for field in ("d_model", "n_layers", "n_heads"):
        values = [getattr(e.arch, field) for e in grid]
        for edge in (min(values), max(values)):
            on_edge = [e for e in grid if getattr(e.arch, field) == edge]
            best = min(on_edge, key=lambda e: (abs(e.n_params - target), e.n_params, index[e]))
            if best not in chosen:
                chosen.append(best)
    return chosen
