"""The raw and processed data manifests: what exists, where, and its checksum.

Two JSON files under `engine.paths.manifests_dir()`, indented for people to read:
`raw.json` (one entry per ticker) and `processed.json` (one per name, tier and version).
Paths inside them are relative to the workspace, so a workspace can move. Every write
goes to a temporary file renamed into place, under a lock, so parallel workers that
build the same dataset never leave a half-written manifest.

A campaign reads data only through `load_processed`, which re-hashes the file, so data
that changed after it was built is loud (original-pipeline.md, failures 1 and 2).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from engine import paths
from engine.atomic import write_atomic
from engine.errors import UserError
from engine.filelock import held

FORMAT = 1


@dataclass(frozen=True)
class RawEntry:
    """A raw OHLCV file: data/raw/<name>.parquet."""

    name: str
    path: str  # relative to the workspace
    sha256: str
    rows: int
    start: str  # first date, YYYY-MM-DD
    end: str
    columns: list[str]
    created: str  # UTC, ISO 8601
    source: str = ""  # the imported file, "yfinance", or "sample:<file>"

    def file(self) -> Path:
        return paths.workspace() / self.path


@dataclass(frozen=True)
class ProcessedEntry:
    """A feature dataset: data/processed/v<version>/<name>_<tier>.parquet."""

    name: str
    tier: str
    version: int
    path: str  # relative to the workspace
    sha256: str
    rows: int
    start: str
    end: str
    columns: list[str]
    created: str
    inputs: dict[str, str] = field(default_factory=dict)  # raw name -> its sha256
    features: str = ""  # engine.dataset.features.tier_fingerprint at build time

    def file(self) -> Path:
        return paths.workspace() / self.path

    @property
    def key(self) -> str:
        return f"{self.name}/{self.tier}/v{self.version}"


def raw_manifest_path() -> Path:
    return paths.manifests_dir() / "raw.json"


def processed_manifest_path() -> Path:
    return paths.manifests_dir() / "processed.json"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(paths.workspace()).as_posix()
    except ValueError:
        return str(path.resolve())


# ---- locking and atomic writes ----------------------------------------------------------

_lock_depth = 0


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold the workspace's data lock (re-entrant within a process)."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    paths.manifests_dir().mkdir(parents=True, exist_ok=True)
    with held(paths.manifests_dir() / ".lock"):
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0


# ---- reading and writing manifests ------------------------------------------------------


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        entries = document["datasets"]
        if not isinstance(entries, list):
            raise TypeError("datasets is not a list")
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"unreadable manifest ({error})",
            where=str(path),
            hint="restore it, or delete it and re-run `hpotui data import`/`build`",
        ) from None
    return entries


def _entry(cls: type[Any], data: dict[str, Any], where: Path) -> Any:
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as error:
        raise UserError(
            f"malformed entry {data.get('name')!r} ({error})", where=str(where)
        ) from None


def _write(path: Path, kind: str, entries: list[dict[str, Any]]) -> None:
    document = {"manifest": kind, "format": FORMAT, "datasets": entries}
    text = json.dumps(document, indent=2) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def raw_entries() -> list[RawEntry]:
    path = raw_manifest_path()
    return [_entry(RawEntry, data, path) for data in _read(path)]


def processed_entries() -> list[ProcessedEntry]:
    path = processed_manifest_path()
    return [_entry(ProcessedEntry, data, path) for data in _read(path)]


def find_raw(name: str) -> RawEntry | None:
    return next((e for e in raw_entries() if e.name == name), None)


def find_processed(name: str, tier: str, version: int) -> ProcessedEntry | None:
    return next(
        (e for e in processed_entries() if (e.name, e.tier, e.version) == (name, tier, version)),
        None,
    )


def put_raw(entry: RawEntry) -> None:
    with locked():
        others = [e for e in raw_entries() if e.name != entry.name]
        entries = sorted([*others, entry], key=lambda e: e.name)
        _write(raw_manifest_path(), "hpotui raw data", [asdict(e) for e in entries])


def put_processed(entry: ProcessedEntry) -> None:
    with locked():
        others = [e for e in processed_entries() if e.key != entry.key]
        entries = sorted([*others, entry], key=lambda e: (e.name, e.tier, e.version))
        _write(processed_manifest_path(), "hpotui processed data", [asdict(e) for e in entries])


# ---- checking and loading ---------------------------------------------------------------


def file_problem(label: str, file: Path, sha256: str) -> str | None:
    """One line when `file` is missing or its sha256 is not `sha256`, else None."""
    if not file.is_file():
        return f"{label}: missing file {file}"
    actual = sha256_file(file)
    if actual != sha256:
        return f"{label}: checksum mismatch in {file} (manifest {sha256[:12]}, file {actual[:12]})"
    return None


def verify_all() -> list[str]:
    """Re-hash every raw and processed file; one line per problem (empty when all good).

    Reports missing files, checksum mismatches, and processed sets whose raw input has
    changed since they were built.
    """
    problems: list[str] = []
    raw_now: dict[str, str] = {}
    for raw in raw_entries():
        raw_now[raw.name] = raw.sha256
        problem = file_problem(f"raw {raw.name}", raw.file(), raw.sha256)
        if problem:
            problems.append(problem)
    for entry in processed_entries():
        problem = file_problem(f"processed {entry.key}", entry.file(), entry.sha256)
        if problem:
            problems.append(problem)
        for name, sha in entry.inputs.items():
            if name not in raw_now:
                problems.append(
                    f"processed {entry.key}: its input raw {name} is not in the manifest"
                )
            elif raw_now[name] != sha:
                problems.append(
                    f"processed {entry.key}: raw {name} changed since the build "
                    f"(rebuild with `hpotui data build --ticker {name} --tier {entry.tier} "
                    f"--version {entry.version + 1}`)"
                )
    return problems


def _missing_hint(name: str, tier: str, version: int) -> str:
    return f"run `hpotui data build --ticker {name} --tier {tier} --version {version}`"


def load_processed(
    name: str, tier: str, version: int, *, verify: bool = True
) -> tuple[pd.DataFrame, ProcessedEntry]:
    """The dataset as a DataFrame (DatetimeIndex "Date", the tier's columns in order).

    verify=True re-hashes the file first; a missing file or a checksum mismatch raises
    UserError, so a campaign never trains on data other than what was built.
    """
    from engine.dataset.features import tier_columns

    entry = find_processed(name, tier, version)
    where = f"dataset {name}/{tier}/v{version}"
    if entry is None:
        raise UserError(
            f"not in {processed_manifest_path()}",
            where=where,
            hint=_missing_hint(name, tier, version),
        )
    if verify:
        problem = file_problem(where, entry.file(), entry.sha256)
        if problem:
            raise UserError(problem, hint=_missing_hint(name, tier, version) + " with --force")
    elif not entry.file().is_file():
        raise UserError(
            f"missing file {entry.file()}", where=where, hint=_missing_hint(name, tier, version)
        )
    frame = pd.read_parquet(entry.file())
    expected = tier_columns(tier)
    if list(frame.columns) != expected or list(entry.columns) != expected:
        raise UserError(
            f"columns {list(frame.columns)} do not match tier {tier} ({len(expected)} columns)",
            where=where,
            hint=_missing_hint(name, tier, version + 1),
        )
    frame.index = pd.DatetimeIndex(frame.index, name="Date")
    return frame, entry
