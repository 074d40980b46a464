"""What each key of a campaign config accepts: the single place that knows it.

A check is a function `value -> converted value` that raises `Invalid(expected)` with
the text of what was expected; the loader adds the file, line and key. Section schemas
map the keys of one TOML table to their checks; their key names are the fields of the
contract dataclasses (SplitSpec, SamplerSpec, PrunerSpec, GridSpec, MonitorSpec).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from engine.campaign.problems import describe, nearest
from engine.dataset.spec import parse_task

Check = Callable[[Any], Any]


class Invalid(ValueError):
    """A value that does not fit its key; the text says what was expected."""


def _got(value: Any) -> str:
    return f"got {describe(value)}"


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected an integer, {_got(value)}")
        if minimum is not None and value < minimum:
            raise Invalid(f"expected an integer >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise Invalid(f"expected an integer <= {maximum}, got {value}")
        return value

    return check


def number(
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
) -> Check:
    """A float (integers accepted); `minimum`/`maximum` inclusive, `above`/`below` strict."""

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"expected a number, {_got(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise Invalid(f"expected a finite number, got {value}")
        if minimum is not None and number < minimum:
            raise Invalid(f"expected a number >= {minimum:g}, got {value}")
        if maximum is not None and number > maximum:
            raise Invalid(f"expected a number <= {maximum:g}, got {value}")
        if above is not None and number <= above:
            raise Invalid(f"expected a number > {above:g}, got {value}")
        if below is not None and number >= below:
            raise Invalid(f"expected a number < {below:g}, got {value}")
        return number

    return check


def string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected a non-empty string, {_got(value)}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, {_got(value)}")
    return value


def choice(*options: str) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            guess = nearest(str(value), options) if isinstance(value, str) else None
            hint = f" (did you mean {guess!r}?)" if guess else ""
            listed = ", ".join(repr(o) for o in options)
            raise Invalid(f"expected one of {listed}, {_got(value)}{hint}")
        return str(value)

    return check


def list_of(item: Check, *, unique: bool = True) -> Check:
    def check(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list) or not value:
            raise Invalid(f"expected a non-empty list, {_got(value)}")
        items = tuple(item(v) for v in value)
        if unique and len(set(items)) != len(items):
            raise Invalid(f"expected a list without repeats, got {value!r}")
        return items

    return check


def task(value: Any) -> str:
    text = string(value)
    try:
        parse_task(text)
    except ValueError as error:
        raise Invalid(str(error)) from None
    return text


def budget(value: Any) -> str:
    """A parameter budget such as "2M", "100K" or "1.5B" (engine.model.grid decides)."""
    from engine.errors import UserError
    from engine.model.grid import parse_budget

    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Invalid(f'expected a budget such as "2M" or "100K", {_got(value)}')
    text = str(value)
    try:
        count = parse_budget(text)
    except (ValueError, UserError) as error:
        raise Invalid(f'unknown budget syntax {text!r}; expected e.g. "100K", "2M", "1.5B"') from (
            error
        )
    if count <= 0:
        raise Invalid(f"expected a positive budget, got {text!r}")
    return text


def workers(value: Any) -> int | str:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid(f'expected "auto" or an integer >= 1, {_got(value)}')
    return value


def dropout_sites(value: Any) -> tuple[str, ...]:
    """`dropout_sites`: a preset ("residual", "reference") or a list of site names."""
    from engine.model.dropout_sites import PRESETS, SITES, parse_sites

    try:
        return parse_sites(value)
    except ValueError as error:
        words = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        known = PRESETS if isinstance(value, str) else SITES
        bad = [w for w in words if isinstance(w, str) and w not in known]
        guess = nearest(bad[0], known) if bad else None
        raise Invalid(str(error) + (f" (did you mean {guess!r}?)" if guess else "")) from None


def fuse(value: Any) -> int | str:
    """`fuse`: "auto" or how many same-architecture trials train as one model."""
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid(f'expected "auto" or an integer >= 1 (1: one trial at a time), {_got(value)}')
    return value


_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$"
)


def duration(value: Any) -> float:
    """Seconds, or a text such as "90s", "30m", "4h", "1h30m"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise Invalid(f"expected a duration > 0, got {value}")
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match or not any(match.groups()):
        raise Invalid(f'expected seconds or a duration such as "30m", "4h", {_got(value)}')
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise Invalid(f"expected a duration > 0, got {value!r}")
    return total


def duration_arg(text: str) -> float:
    """argparse type for a duration flag (`--storage-patience 5m`): a bad value is a usage
    error (exit 2) at the command line."""
    import argparse

    try:
        return duration(float(text) if re.fullmatch(r"\d+(\.\d+)?", text.strip()) else text)
    except Invalid as error:
        raise argparse.ArgumentTypeError(str(error)) from None


SPLIT: dict[str, Check] = {
    "mode": choice("contiguous", "chunks"),
    "val_fraction": number(above=0.0, below=1.0),
    "test_fraction": number(minimum=0.0, below=1.0),
    "n_chunks": integer(1),
    "purge": integer(0),
    "min_val_windows": integer(1),
    "seed": integer(),
    "test_periods": integer(1, 20),
}

SAMPLER: dict[str, Check] = {
    "kind": choice("tpe", "random", "grid"),
    "seed": integer(),
    "multivariate": boolean,
    "constant_liar": boolean,
    "n_startup_trials": integer(0),
}

PRUNER: dict[str, Check] = {
    "kind": choice("median", "hyperband", "none"),
    "n_startup_trials": integer(0),
    "n_warmup_steps": integer(0),
}

ARCHITECTURE: dict[str, Check] = {
    "d_model": list_of(integer(1)),
    "n_layers": list_of(integer(1)),
    "n_heads": list_of(integer(1)),
    "ff_ratio": list_of(integer(1)),
    "tolerance": number(above=0.0, maximum=1.0),
}

MONITOR: dict[str, Check] = {
    "warning_c": number(),
    "critical_c": number(),
    "hysteresis_c": number(minimum=0.0),
    "cool_down_s": number(minimum=0.0),
    "on_unknown_temperature": choice("run", "pause"),
    "min_available_memory_gb": number(minimum=0.0),
    "max_swap_growth_mb_per_s": number(above=0.0),
    "interval_s": number(above=0.0),
}

CAMPAIGN: dict[str, Check] = {
    "name": string,
    "description": string,
    "workers": workers,
    "storage": string,
    "storage_patience": duration,
    "order": list_of(string),
}

# Keys of one experiment, valid in [defaults], [grid] and each [[experiments]] entry.
EXPERIMENT: dict[str, Check] = {
    "dataset": string,
    "tier": string,
    "version": integer(1),
    "task": task,
    "price_basis": choice("close", "high"),
    "context_len": integer(2),
    "patch_len": integer(1),
    "stride": integer(1),
    "normalization": choice("zscore", "revin", "rolling"),
    "rolling_window": integer(2),
    "n_trials": integer(1),
    "forced_extremes": boolean,
    "device": string,
    "precision": choice("auto", "fp32", "bf16"),
    "fuse": fuse,
    "timeout": duration,
    "max_consecutive_failures": integer(1),
    "objective": choice("val_bce", "val_auc"),
    "dropout_sites": dropout_sites,
}

# Tables inside an experiment, merged key by key from defaults to grid to experiment.
EXPERIMENT_TABLES: dict[str, dict[str, Check]] = {
    "split": SPLIT,
    "sampler": SAMPLER,
    "pruner": PRUNER,
    "architecture": ARCHITECTURE,
}

# Keys that say which experiments exist; not valid in [defaults].
GRID_AXES: dict[str, Check] = {
    "budgets": list_of(budget),
    "horizons": list_of(integer(1)),
    "tasks": list_of(task),
}
ENTRY_ONLY: dict[str, Check] = {"name": string, "budget": budget, "horizon": integer(1)}


def notify_urls(value: Any) -> tuple[str, ...]:
    """Apprise URLs; a message never quotes one (they hold tokens and passwords)."""
    from engine.notify.config import is_url

    if not isinstance(value, list):
        shown = "a string" if isinstance(value, str) else describe(value)  # never the URL
        raise Invalid(f'expected a list of URL strings such as ["ntfy://topic"], got {shown}')
    for index, url in enumerate(value):
        if not isinstance(url, str) or not is_url(url):
            raise Invalid(
                f"item {index + 1} is not a URL: expected scheme://..., such as "
                "'ntfy://topic' or 'json://host/path' (apprise URLs)"
            )
    return tuple(dict.fromkeys(v.strip() for v in value))


def _notify_events(value: Any) -> tuple[str, ...]:
    from engine.notify.config import EVENTS

    if isinstance(value, list) and not value:
        return ()  # on = [] : no event sends a message
    return list_of(choice(*EVENTS))(value)  # type: ignore[no-any-return]


NOTIFY: dict[str, Check] = {"urls": notify_urls, "on": _notify_events}

REPORT: dict[str, Check] = {"top": integer(1), "seeds": integer(1), "workers": workers}

TOP_LEVEL = ("campaign", "defaults", "grid", "experiments", "monitor", "notify", "report")
