"""Import raw OHLCV and build processed feature datasets, registering both in manifests.

    import_raw(file, ticker)            -> data/raw/<TICKER>.parquet + raw manifest entry
    build_dataset(ticker, tier, version) -> data/processed/v<N>/<TICKER>_<tier>.parquet
    ensure_dataset(name, tier, version)  -> the entry, building embedded samples on demand

Validation happens before anything is written; files are written to a temporary name
and renamed, then the manifest is updated, all under the workspace's data lock.
A processed version is immutable: rebuilding it from different raw data or different
feature code needs `force=True` (or a new version), so a campaign that names
SP500/a25/v1 always means the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from engine import paths
from engine.atomic import write_atomic
from engine.dataset import features, manifest
from engine.dataset.manifest import ProcessedEntry, RawEntry
from engine.dataset.ohlcv import Ohlcv, read_ohlcv
from engine.errors import UserError

SAMPLES = {"SP500": "sp500.csv.gz", "NASDAQ": "nasdaq.csv.gz"}
"""Embedded real data (data/samples/NOTICE): dataset name -> file in samples_dir()."""

DEFAULT_TIER = "a25"
_TICKER = re.compile(r"^[A-Z0-9][A-Z0-9._=-]*$")


def ticker_name(ticker: str) -> str:
    """`^gspc` -> `GSPC`: the dataset name of a ticker (leading ^ dropped, upper case)."""
    name = ticker.strip().lstrip("^").upper()
    if not _TICKER.match(name):
        raise UserError(
            f"invalid ticker {ticker!r}",
            where="--ticker",
            hint="letters, digits, '.', '-', '=' (a leading ^ is dropped)",
        )
    return name


def raw_path(name: str) -> Path:
    return paths.raw_dir() / f"{name}.parquet"


def processed_path(name: str, tier: str, version: int) -> Path:
    return paths.processed_dir(version) / f"{name}_{tier}.parquet"


def min_raw_rows(tier: str = DEFAULT_TIER) -> tuple[int, str]:
    """Fewest raw rows a build of `tier` can use, and the indicator that sets it."""
    return features.max_warmup(tier) + 1, features.longest_spec(tier)


def _dates(frame: pd.DataFrame) -> tuple[str, str]:
    index = pd.DatetimeIndex(frame.index)
    return str(index[0].date()), str(index[-1].date())


# ---- raw --------------------------------------------------------------------------------


@dataclass
class Imported:
    entry: RawEntry
    changed: bool  # False when the same data was already registered
    warnings: list[str] = field(default_factory=list)


def store_raw(data: Ohlcv, name: str, source: str, *, force: bool = False) -> Imported:
    """Write validated data as raw/<name>.parquet and register it.

    The same data again is a no-op; different data for a registered name is refused
    unless `force` (processed sets built from the old data then show as stale).
    """
    target = raw_path(name)
    with manifest.locked():
        existing = manifest.find_raw(name)
        if existing is not None and not force:
            if _holds(existing, data.frame):
                return Imported(existing, changed=False, warnings=data.warnings)
            raise UserError(
                f"raw {name} exists with different data",
                where=existing.path,
                hint="use --force to replace it (processed sets built from it become stale)",
            )
        write_atomic(target, lambda tmp: data.frame.to_parquet(tmp))
        start, end = _dates(data.frame)
        entry = RawEntry(
            name=name,
            path=manifest.relative(target),
            sha256=manifest.sha256_file(target),
            rows=len(data.frame),
            start=start,
            end=end,
            columns=list(data.frame.columns),
            created=manifest.now(),
            source=source,
        )
        manifest.put_raw(entry)
        return Imported(entry, changed=True, warnings=data.warnings)


def _holds(entry: RawEntry, frame: pd.DataFrame) -> bool:
    """Whether the registered, intact file of `entry` holds exactly `frame`."""
    file = entry.file()
    if not file.is_file() or manifest.sha256_file(file) != entry.sha256:
        return False
    return bool(pd.read_parquet(file).equals(frame))


def import_raw(source: Path, ticker: str, *, force: bool = False) -> Imported:
    """Validate `source` (CSV or parquet) and store it as the raw data of `ticker`."""
    name = ticker_name(ticker)
    needed, longest = min_raw_rows()
    data = read_ohlcv(source, min_rows=needed, needed_by=longest)
    return store_raw(data, name, str(source), force=force)


def import_sample(name: str) -> Imported:
    """Import an embedded sample (SP500, NASDAQ) as raw data."""
    needed, longest = min_raw_rows()
    source = paths.samples_dir() / SAMPLES[name]
    data = read_ohlcv(source, min_rows=needed, needed_by=longest)
    return store_raw(data, name, f"sample:{SAMPLES[name]}")


# ---- processed --------------------------------------------------------------------------


def _raw_for(name: str) -> RawEntry:
    entry = manifest.find_raw(name)
    if entry is None:
        if name in SAMPLES:
            return import_sample(name).entry
        raise UserError(
            f"no raw data for {name}",
            hint=f"run `hpotui data import FILE --ticker {name}` or `hpotui data fetch {name}`",
        )
    problem = manifest.file_problem(f"raw {name}", entry.file(), entry.sha256)
    if problem:
        raise UserError(
            problem, hint=f"re-import it with `hpotui data import FILE --ticker {name} --force`"
        )
    return entry


def build_dataset(
    ticker: str = "SP500", tier: str = DEFAULT_TIER, version: int = 1, *, force: bool = False
) -> ProcessedEntry:
    """Compute `tier`'s features from the raw data of `ticker`, drop warm-up rows, register.

    The embedded samples (SP500, NASDAQ) are imported first when absent. An existing
    entry built from the same raw data and feature code is returned as is (rebuilt if
    its file is gone); a different one is refused unless `force`.
    """
    name = ticker_name(ticker)
    columns = features.tier_columns(tier)
    if version < 1:
        raise UserError(f"version must be >= 1, got {version}", where="--version")
    fingerprint = features.tier_fingerprint(tier)
    if name not in SAMPLES and manifest.find_raw(name) is None:
        _raw_for(name)  # raises, naming the command to run, before anything is written
    with manifest.locked():
        raw = _raw_for(name)
        existing = manifest.find_processed(name, tier, version)
        if existing is not None:
            same_recipe = existing.inputs == {name: raw.sha256} and existing.features == fingerprint
            intact = manifest.file_problem("", existing.file(), existing.sha256) is None
            if same_recipe and intact:
                return existing
            if not same_recipe and not force:
                raise UserError(
                    "exists, built from other raw data or older feature code",
                    where=f"dataset {existing.key}",
                    hint=f"build --version {version + 1}, or pass --force to replace it",
                )
        frame = pd.read_parquet(raw.file())
        needed, longest = min_raw_rows(tier)
        if len(frame) < needed:
            raise UserError(
                f"too few rows: {len(frame)}, at least {needed} needed for the warm-up of {longest}",
                where=f"raw {name}",
            )
        table = features.drop_warmup(features.compute_features(frame, tier))
        table = table[columns]
        table.index.name = "Date"
        target = processed_path(name, tier, version)
        write_atomic(target, lambda tmp: table.to_parquet(tmp))
        start, end = _dates(table)
        entry = ProcessedEntry(
            name=name,
            tier=tier,
            version=version,
            path=manifest.relative(target),
            sha256=manifest.sha256_file(target),
            rows=len(table),
            start=start,
            end=end,
            columns=columns,
            created=manifest.now(),
            inputs={name: raw.sha256},
            features=fingerprint,
        )
        manifest.put_processed(entry)
        return entry


def ensure_dataset(name: str, tier: str, version: int) -> ProcessedEntry:
    """The manifest entry of name/tier/version, building an embedded sample on demand.

    Any other missing dataset raises UserError naming the `hpotui data` command to run.
    """
    features.tier_columns(tier)  # unknown tier -> UserError
    entry = manifest.find_processed(name, tier, version)
    if entry is not None and entry.file().is_file():
        return entry
    if name in SAMPLES:
        return build_dataset(name, tier, version)
    command = f"hpotui data build --ticker {name} --tier {tier} --version {version}"
    if entry is not None:
        raise UserError(
            f"missing file {entry.file()}",
            where=f"dataset {entry.key}",
            hint=f"run `{command} --force`",
        )
    where = f"dataset {name}/{tier}/v{version}"
    if manifest.find_raw(name) is None:
        command = f"hpotui data import FILE --ticker {name}` (or `hpotui data fetch {name}`), then `{command}"
        guess = _known_like(name)
        if guess is not None:  # a typo of a dataset we have, not a dataset to import
            raise UserError(
                f"no such dataset (did you mean {guess}?)",
                where=where,
                hint=f"a new dataset: run `{command}`",
            )
    raise UserError("is not built", where=where, hint=f"run `{command}`")


def _known_like(name: str) -> str | None:
    """The known dataset (embedded, imported or built) `name` is likely a typo of."""
    import difflib

    known = set(SAMPLES) | {e.name for e in manifest.raw_entries()}
    known |= {e.name for e in manifest.processed_entries()}
    found = difflib.get_close_matches(name, sorted(known - {name}), n=1, cutoff=0.6)
    return found[0] if found else None
