"""The run-choice cache: what `engine.train.autotune` measured on this machine, per class.

One JSON file, `cache_path()`: $HPOTUI_CACHE_DIR/autotune.json, else the platform's user
cache directory (the answer belongs to the machine, not to a campaign). Entries are keyed
by machine (`machine()`: CPU model, torch version), device, architecture class and the
settings that change the answer. Writes are atomic and made under an flock beside the
file; a damaged file reads as empty (measured again, rewritten); an unwritable one keeps
this process's answers in memory. This module imports no torch, so `hpotui hw` can list
the cache without loading it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine import filelock
from engine.atomic import write_atomic

CACHE_ENV = "HPOTUI_CACHE_DIR"
FUSE_PREFIX = "fuse | "  # entries of `engine.train.fuse_size` (K for fuse = "auto")


@dataclass(frozen=True)
class RunChoice:
    """What a trial runs with, and why: `source` is "measured" (timed now), "cached" (timed
    before on this machine), or "rule" (not timed: CUDA, or HPOTUI_AUTOTUNE=off).
    `figures`: per stage ("threads", "precision", "attention"), the ms per step of each
    candidate it timed (`Candidate.label`): the figures that stage compared."""

    precision: str
    attention: str
    threads: int | None
    source: str
    key: str = ""
    measured_on: str = ""  # the architecture timed for the class
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    cost_s: float = 0.0  # wall time of the calibration (steps and model builds)

    @property
    def dtype(self) -> Any:
        """torch.bfloat16 for bf16, None for fp32 (the trainers' `training_dtype` form)."""
        import torch

        return torch.bfloat16 if self.precision == "bf16" else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunChoice:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def machine() -> str:
    """CPU model and torch version (the key adds the device): a figure is reused only here."""
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"{cpu_model()} | torch {version}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: the platform's own name below
    if sys.platform == "darwin":
        from engine.monitor.macos import run_command

        brand = run_command(["sysctl", "-n", "machdep.cpu.brand_string"])
        if brand:
            return brand.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cache_path() -> Path:
    """$HPOTUI_CACHE_DIR/autotune.json, else the platform's user cache directory."""
    env = os.environ.get(CACHE_ENV)
    if env:
        base = Path(env)
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "hpotui"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hpotui"
    return base / "autotune.json"


class CacheLock:
    """An flock beside the cache file; none when its directory cannot be made."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self._held: Any = None

    def __enter__(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._held = filelock.held(self.path)
            self._held.__enter__()
        except OSError:
            self._held = None  # a read-only home: measure, keep the answer in memory

    def __exit__(self, *exc: object) -> None:
        if self._held is not None:
            self._held.__exit__(*exc)


memory: dict[str, dict[str, Any]] = {}  # this process's entries (cache unwritable)


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    entries = dict(memory)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or damaged: measured again and rewritten
        return entries
    if isinstance(data, dict) and isinstance(data.get("entries"), dict):
        entries.update(data["entries"])
    return entries


def write_entry(path: Path, key: str, choice: RunChoice | dict[str, Any]) -> None:
    value = choice if isinstance(choice, dict) else choice.to_dict()
    memory[key] = value
    entries = read_cache(path)
    entries[key] = value
    text = json.dumps({"version": 1, "entries": dict(sorted(entries.items()))}, indent=1)
    try:
        write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as error:
        print(f"hpotui: autotune cache {path} not written ({error})", file=sys.stderr)


def cached_choices(path: Path | None = None) -> dict[str, RunChoice]:
    """Every cached run choice, by key (for `hpotui hw`)."""
    entries = read_cache(path or cache_path())
    return {
        key: RunChoice.from_dict(value)
        for key, value in sorted(entries.items())
        if not key.startswith(FUSE_PREFIX)
    }


def cached_fuse_choices(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every cached fused-group size (`engine.train.fuse_size.FuseChoice.to_dict`), by key
    without `FUSE_PREFIX`."""
    entries = read_cache(path or cache_path())
    return {
        key[len(FUSE_PREFIX) :]: value
        for key, value in sorted(entries.items())
        if key.startswith(FUSE_PREFIX)
    }
