"""Which key the user changed, when a later check fails because of it.

Checks fail at the figure that comes out wrong: the split checks
(`engine.dataset.splits.split_days`) at "validation split has 0 windows, below
split.min_val_windows" or "no training windows left", the architecture grid
(`engine.model.grid.architecture_grid`) at "no architecture within the budget". When the
file set a purge of 5000, a val_fraction of 0.01 or n_layers = [400], those name a
consequence: the user must change the key they wrote. The cause is found by trying it:
a key the file set is the cause when its built-in default alone makes the check pass.
Nothing found: the failing key is the cause (a budget below every architecture is the
budget's fault).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from engine.campaign.model import ExperimentConfig
from engine.dataset.spec import DataSpec, SplitSpec
from engine.errors import UserError
from engine.model.architecture import GridSpec

# failing key -> keys that can starve it, each with the way to fix it
_SUSPECTS = {
    "split.min_val_windows": {
        "split.val_fraction": "raise split.val_fraction",
        "split.purge": "lower split.purge",
        "split.n_chunks": "use fewer split.n_chunks",
        "context_len": "lower context_len",
    },
    "split": {  # no training windows left
        "split.purge": "lower split.purge",
        "split.val_fraction": "lower split.val_fraction",
        "split.test_fraction": "lower split.test_fraction",
        "split.n_chunks": "use fewer split.n_chunks",
        "context_len": "lower context_len",
    },
}
# keys that shape the architectures a budget can hold, in the order they are blamed
_GRID_SUSPECTS = (
    "architecture.n_layers",
    "architecture.d_model",
    "architecture.ff_ratio",
    "architecture.n_heads",
    "architecture.tolerance",
    "context_len",
    "patch_len",
    "stride",
)
_DEFAULT_SPLIT = SplitSpec()
_DEFAULT_DATA = DataSpec()
_DEFAULT_GRID = GridSpec()


def split_cause(
    key: str, spec: DataSpec, n_rows: int, written: Callable[[str], bool]
) -> tuple[str, UserError] | None:
    """(the key to change, its message) when a key the file set (`written`) alone makes
    the split check that failed at `key` fail; None when the failing key is the cause."""
    from engine.dataset.splits import split_days

    suspects = _SUSPECTS.get(key, {})
    if not suspects or (key != "split" and written(key)):
        return None  # the user set the minimum themselves: it is what they change
    for suspect, fix in suspects.items():
        if not written(suspect):
            continue
        try:
            split_days(n_rows, _with_default(spec, suspect))
        except UserError:
            continue  # not this one alone
        name = suspect.split(".")[-1]
        value = getattr(spec.split if suspect.startswith("split.") else spec, name)
        if key == "split":
            return suspect, UserError(f"{name} {value} leaves no training windows", hint=fix)
        return suspect, UserError(
            f"{name} {value} leaves fewer validation windows than split.min_val_windows "
            f"({spec.split.min_val_windows})",
            hint=f"{fix}, or lower split.min_val_windows",
        )
    return None


def _with_default(spec: DataSpec, key: str) -> DataSpec:
    name = key.split(".")[-1]
    if key.startswith("split."):
        split = replace(spec.split, **{name: getattr(_DEFAULT_SPLIT, name)})
        return replace(spec, split=split)
    return replace(spec, **{name: getattr(_DEFAULT_DATA, name)})


def grid_cause(
    exp: ExperimentConfig, n_features: int, error: UserError, written: Callable[[str], bool]
) -> tuple[str, UserError] | None:
    """(the key to change, its message) when a key the file set alone empties the
    budget's architecture grid (`error` says so); None when the budget is the cause."""
    from engine.model.grid import architecture_grid

    for suspect in _GRID_SUSPECTS:
        if not written(suspect):
            continue
        name = suspect.split(".")[-1]
        spec, data = exp.grid, exp.data
        if suspect.startswith("architecture."):
            spec = replace(spec, **{name: getattr(_DEFAULT_GRID, name)})
            value = getattr(exp.grid, name)
        else:
            data = replace(data, **{name: getattr(_DEFAULT_DATA, name)})
            value = getattr(exp.data, name)
        try:
            architecture_grid(
                exp.budget, n_features, spec, data.context_len, data.patch_len, data.stride
            )
        except UserError:
            continue  # not this one alone
        shown = list(value) if isinstance(value, tuple) else value
        return suspect, UserError(
            f"{name} {shown} leaves {error.message}",
            hint=f"change {name} (its built-in default reaches budget {exp.budget}), or the budget",
        )
    return None
