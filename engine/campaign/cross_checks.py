"""Checks that relate several keys of a config: each key can be valid alone and the
combination still wrong (a name saying h3 at horizon 1, a patch longer than the context,
trials held by a warning that could never resume). Each problem is said at the key the
user must change.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from engine.campaign.model import MonitorSpec
from engine.campaign.problems import Problems
from engine.campaign.toml_lines import KeyPath
from engine.dataset.spec import DataSpec
from engine.monitor.system import PLAUSIBLE_C

if TYPE_CHECKING:
    from engine.campaign.config import _Layer

_NAME_PARTS = re.compile(r"^(?P<budget>\d+(?:\.\d+)?[KMBG]?)_h(?P<horizon>\d+)(?:_|$)", re.I)


def check_name(name: str, budget: str, horizon: int, path: KeyPath, problems: Problems) -> None:
    """A name that reads "2M_h3" must train budget 2M at horizon 3 (reference failure 3)."""
    match = _NAME_PARTS.match(name)
    if not match:
        return
    if int(match["horizon"]) != horizon:
        problems.add(
            path, f"name {name!r} says horizon {match['horizon']} but horizon is {horizon}"
        )
    if match["budget"].upper() != budget.upper():
        problems.add(path, f"name {name!r} says budget {match['budget']} but budget is {budget}")


def check_data(data: DataSpec, layer: _Layer, problems: Problems) -> None:
    def where(key: str, table: str | None = None) -> KeyPath:
        source = layer.tables.get(table, {}) if table else layer.values
        return source[key][1] if key in source else ()

    if data.patch_len > data.context_len:
        problems.add(
            where("patch_len"),
            f"expected patch_len <= context_len ({data.context_len}), got {data.patch_len}",
        )
    split = data.split
    if split.val_fraction + split.test_fraction >= 1:
        problems.add(
            where("val_fraction", "split") or where("test_fraction", "split"),
            "expected val_fraction + test_fraction < 1 (training needs rows), got "
            f"{split.val_fraction:g} + {split.test_fraction:g}",
        )
    if split.purge is not None and split.purge < data.labels.horizon:
        problems.add(
            where("purge", "split"),
            f"expected purge >= the horizon ({data.labels.horizon}) so no label crosses a split "
            f"boundary, got {split.purge}",
        )


def check_fuse(layer: _Layer, problems: Problems) -> None:
    """A K above n_trials is a typo, not a plan: a group never holds more than half of
    an experiment's trials (engine/worker/trial_group.py), so the K written would never run."""
    fuse, n_trials = layer.get("fuse", 1), layer.get("n_trials", 50)
    if isinstance(fuse, int) and fuse > n_trials:
        problems.add(
            layer.values["fuse"][1],
            f"fuse {fuse} is more than n_trials ({n_trials}): a fused group holds at most "
            "half of an experiment's trials",
            hint=f'use "auto", or at most {max(1, n_trials // 2)}',
        )


def check_monitor(monitor: MonitorSpec, values: dict[str, Any], problems: Problems) -> None:
    """Thresholds that contradict each other, or that no sensor can reach (`values`: the
    keys the file set)."""
    if monitor.warning_c >= monitor.critical_c:
        problems.add(
            ("monitor", "warning_c"),
            f"expected warning_c < critical_c, got {monitor.warning_c:g} >= {monitor.critical_c:g}",
        )
    resume = monitor.warning_c - monitor.hysteresis_c
    if resume <= PLAUSIBLE_C[0]:  # held trials would never resume
        key = "hysteresis_c" if "hysteresis_c" in values else "warning_c"
        problems.add(
            ("monitor", key),
            f"trials held by a warning resume below warning_c - hysteresis_c = {resume:g} C, "
            "which no running machine reaches",
            hint="keep hysteresis_c a few degrees: the default is 5",
        )
    for key in ("warning_c", "critical_c"):
        if key in values and values[key] >= PLAUSIBLE_C[1]:  # protection would be off
            problems.add(
                ("monitor", key),
                f"{key} {values[key]:g} is never reached: no sensor reads {PLAUSIBLE_C[1]:g} C "
                "or more",
                hint="thresholds are degrees Celsius, not Fahrenheit",
            )
