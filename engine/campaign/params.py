"""The `params` table of an experiment: searched and fixed training parameters.

Every key must be a field of `engine.train.config.TrainParams`, so a sampled
hyperparameter that training would ignore cannot be configured (the reference
pipeline sampled weight decay and warmup that never reached the optimizer). A value is

    learning_rate = { log_uniform = [1e-4, 1e-3] }     searched, log scale
    dropout       = { uniform = [0.1, 0.3] }            searched (optional step = 0.05)
    warmup_steps  = { int = [0, 500], step = 100 }      searched integers
    batch_size    = { categorical = [64, 128, 256] }    searched from a fixed list
    patience      = 10                                  fixed

Categorical lists are fixed by the config, so Optuna never sees a changing choice list.
"""

from __future__ import annotations

import math
import typing
from typing import Any

from engine.campaign.model import ParamSpec
from engine.campaign.problems import Problems, describe
from engine.campaign.toml_lines import KeyPath
from engine.train.config import TrainParams

KINDS = ("log_uniform", "uniform", "int", "categorical")
_TYPES: dict[str, type] = {
    name: hint for name, hint in typing.get_type_hints(TrainParams).items() if hint in (int, float)
}
# (lowest allowed, lowest is allowed?, highest allowed, highest is allowed?)
_RANGES: dict[str, tuple[float, bool, float, bool]] = {
    "learning_rate": (0.0, False, math.inf, False),
    "epochs": (1, True, math.inf, False),
    "batch_size": (1, True, math.inf, False),
    "weight_decay": (0.0, True, math.inf, False),
    "warmup_steps": (0, True, math.inf, False),
    "dropout": (0.0, True, 1.0, False),
    "head_dropout": (0.0, True, 1.0, False),
    "grad_clip": (0.0, False, math.inf, False),
    "patience": (1, True, math.inf, False),
}


def parse_params(
    table: dict[str, Any], paths: dict[str, KeyPath], problems: Problems
) -> tuple[tuple[ParamSpec, ...], dict[str, Any]]:
    """(search space, fixed params) of a merged params table; `paths` locate each key."""
    space: list[ParamSpec] = []
    fixed: dict[str, Any] = {}
    for name, value in table.items():
        path = paths[name]
        if name not in TrainParams.names():
            problems.unknown_key(path, TrainParams.names(), "training parameter")
            continue
        if isinstance(value, dict):
            spec = _searched(name, value, path, problems)
            if spec is not None:
                space.append(spec)
        else:
            error = _value_error(name, value)
            if error:
                problems.add(path, error)
            else:
                fixed[name] = value
    return tuple(space), fixed


def _searched(
    name: str, table: dict[str, Any], path: KeyPath, problems: Problems
) -> ParamSpec | None:
    kinds = [k for k in table if k in KINDS]
    extra = [k for k in table if k not in (*KINDS, "step")]
    for key in extra:
        problems.unknown_key((*path, key), (*KINDS, "step"))
    if len(kinds) != 1:
        problems.add(path, f"expected exactly one of {', '.join(KINDS)}, got {len(kinds)}")
        return None
    kind = kinds[0]
    value = table[kind]
    step = table.get("step")
    if kind == "categorical":
        return _categorical(name, value, step, path, problems)
    field_type = _TYPES[name]
    if kind in ("log_uniform", "uniform") and field_type is int:
        problems.add(path, f"{name} is an integer; use int or categorical, not {kind}")
        return None
    if kind == "int" and field_type is not int:
        problems.add(path, f"{name} is a real number; use uniform or log_uniform, not int")
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(_value_error(name, v, check_range=False) for v in value)
    ):
        kind_type = "integers" if kind == "int" else "numbers"
        problems.add(path, f"{kind}: expected [low, high], two {kind_type}, got {value!r}")
        return None
    low, high = value
    if low >= high:
        problems.add(path, f"{kind}: expected low < high, got [{low}, {high}]")
        return None
    if kind == "log_uniform" and low <= 0:
        problems.add(path, f"log_uniform: expected bounds > 0, got [{low}, {high}]")
        return None
    for bound in (low, high):
        error = _value_error(name, bound)
        if error:
            problems.add(path, error)
            return None
    if step is not None:
        if kind == "log_uniform":
            problems.add((*path, "step"), "log_uniform takes no step")
            return None
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            problems.add((*path, "step"), f"expected a number > 0, got {describe(step)}")
            return None
        if kind == "int" and not isinstance(step, int):
            problems.add((*path, "step"), f"expected an integer step, got {step!r}")
            return None
    return ParamSpec(
        name=name,
        kind=kind,  # type: ignore[arg-type]  # one of KINDS, checked above
        low=float(low) if kind != "int" else low,
        high=float(high) if kind != "int" else high,
        step=step,
    )


def _categorical(
    name: str, value: Any, step: Any, path: KeyPath, problems: Problems
) -> ParamSpec | None:
    if step is not None:
        problems.add((*path, "step"), "categorical takes no step")
        return None
    if not isinstance(value, list) or not value:
        problems.add(path, f"categorical: expected a non-empty list, got {describe(value)}")
        return None
    errors = [e for e in (_value_error(name, v) for v in value) if e]
    if errors:
        problems.add(path, f"categorical: {errors[0]}")
        return None
    if len(set(value)) != len(value):
        problems.add(path, f"categorical: expected choices without repeats, got {value!r}")
        return None
    return ParamSpec(name=name, kind="categorical", choices=tuple(value))


def _value_error(name: str, value: Any, *, check_range: bool = True) -> str | None:
    """Why `value` cannot be TrainParams.<name>, or None."""
    field_type = _TYPES.get(name, float)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number for {name}, got {describe(value)}"
    if not math.isfinite(value):
        return f"expected a finite number for {name}, got {value}"
    if field_type is int and not isinstance(value, int):
        return f"expected an integer for {name}, got {value!r}"
    if not check_range or name not in _RANGES:
        return None
    low, low_ok, high, high_ok = _RANGES[name]
    if (
        value < low
        or (value == low and not low_ok)
        or value > high
        or (value == high and not high_ok)
    ):
        lower = f"{'>=' if low_ok else '>'} {low:g}"
        upper = "" if math.isinf(high) else f" and {'<=' if high_ok else '<'} {high:g}"
        return f"expected {name} {lower}{upper}, got {value!r}"
    return None
