"""Campaign TOML -> validated `Campaign`, with every mistake reported at once.

Layout (docs/config.md is the reference):

    [campaign]      name, workers, storage, order (priority order of experiment names)
    [defaults]      experiment keys shared by all experiments, and its tables:
    [defaults.params] [defaults.split] [defaults.sampler] [defaults.pruner]
    [defaults.architecture]
    [grid]          budgets x horizons (x tasks) -> experiments "2M_h1", ...; may also
                    override any experiment key for the experiments it makes
    [[experiments]] explicit experiments: budget, horizon, optional name and overrides
    [monitor]       thermal and memory thresholds
    [notify]        apprise URLs and the events that send a message (engine.notify)
    [report]        how `hpotui report` retrains: top, seeds, workers

Values are merged defaults -> grid -> experiment, tables key by key. Unknown keys and
wrong types are reported as `file:line: key: what was expected (did you mean X?)`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.campaign import schema
from engine.campaign.cross_checks import check_data, check_fuse, check_monitor, check_name
from engine.campaign.model import (
    Campaign,
    ExperimentConfig,
    MonitorSpec,
    ParamSpec,
    PrunerSpec,
    ReportSpec,
    SamplerSpec,
)
from engine.campaign.params import parse_params
from engine.campaign.problems import Problems, describe, dotted, nearest
from engine.campaign.toml_lines import KeyPath, locate_keys
from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec
from engine.errors import UserError
from engine.model.architecture import GridSpec
from engine.model.dropout_sites import DEFAULT as DEFAULT_SITES
from engine.notify.config import NotifySpec

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SYNTAX_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_DATA_KEYS = (
    "dataset",
    "tier",
    "version",
    "context_len",
    "patch_len",
    "stride",
    "normalization",
    "rolling_window",
)


@dataclass
class _Layer:
    """Validated values of one level (defaults, grid or one experiment), with locations."""

    values: dict[str, tuple[Any, KeyPath]] = field(default_factory=dict)
    tables: dict[str, dict[str, tuple[Any, KeyPath]]] = field(default_factory=dict)
    params: dict[str, tuple[ParamSpec | None, Any, KeyPath]] = field(default_factory=dict)

    def merged(self, over: _Layer) -> _Layer:
        tables = {name: dict(table) for name, table in self.tables.items()}
        for name, table in over.tables.items():
            tables.setdefault(name, {}).update(table)
        return _Layer({**self.values, **over.values}, tables, {**self.params, **over.params})

    def get(self, key: str, default: Any = None) -> Any:
        return self.values[key][0] if key in self.values else default

    def table(self, name: str) -> dict[str, Any]:
        return {key: value for key, (value, _) in self.tables.get(name, {}).items()}


def load_campaign(path: Path) -> Campaign:
    """Read and validate a campaign config; raises `UserErrors` listing every problem."""
    return load_located(path)[0]


def load_located(path: Path) -> tuple[Campaign, Locations]:
    """The campaign and where each experiment's keys are written (for later checks)."""
    path = Path(path)
    data, problems = _read(path)
    known = schema.TOP_LEVEL
    for key in data:
        if key not in known:
            problems.unknown_key((key,), known, "section")
    head = _check_table(data.get("campaign", {}), ("campaign",), schema.CAMPAIGN, problems)
    name = head.get("name", path.stem)
    if not _SAFE_NAME.match(name):
        problems.add(
            ("campaign", "name"), f"expected letters, digits, '_', '.' or '-', got {name!r}"
        )
    defaults = _layer(data.get("defaults", {}), ("defaults",), {"budget", "horizon"}, problems)
    locations = Locations(problems)
    experiments = _expand(data, defaults, problems, locations)
    experiments = _ordered(experiments, head.get("order"), problems)
    monitor = _monitor(data.get("monitor", {}), problems)
    notify = NotifySpec(
        **_check_table(data.get("notify", {}), ("notify",), schema.NOTIFY, problems)
    )
    report = ReportSpec(
        **_check_table(data.get("report", {}), ("report",), schema.REPORT, problems)
    )
    problems.raise_if_any()
    campaign = Campaign(
        name=name,
        path=path.resolve(),
        experiments=tuple(experiments),
        workers=head.get("workers", "auto"),
        storage=head.get("storage"),
        storage_patience_s=schema.duration(head.get("storage_patience", 300.0)),
        monitor=monitor,
        notify=notify,
        report=report,
    )
    return campaign, locations


class Locations:
    """Where each experiment's settings come from in the config file.

    `where("2M_h1", "dataset")` -> ("configs/c.toml:12", "defaults.dataset"): the line
    of the key that set it (in [defaults], [grid] or the experiment's own table), or of
    the experiment's table when the value is a built-in default.
    """

    def __init__(self, problems: Problems) -> None:
        self._problems = problems
        self._keys: dict[str, dict[str, KeyPath]] = {}

    def record(self, experiment: str, origin: KeyPath, layer: _Layer) -> None:
        keys: dict[str, KeyPath] = {"": origin}
        keys.update({key: where for key, (_, where) in layer.values.items()})
        for table, values in layer.tables.items():
            keys.update({f"{table}.{key}": where for key, (_, where) in values.items()})
        keys.update({f"params.{name}": where for name, (_, _, where) in layer.params.items()})
        self._keys[experiment] = keys

    def key_where(self, path: KeyPath) -> tuple[str, str]:
        """("configs/c.toml:3", "campaign.storage") for any key path of the file."""
        return self._problems.where(path), dotted(path)

    def written(self, experiment: str, key: str) -> bool:
        """Did the file set `key` for `experiment` (rather than leave the default)?"""
        keys = self._keys.get(experiment, {})
        return key in keys and keys[key] != keys.get("")

    def where(self, experiment: str, key: str = "") -> tuple[str, str]:
        keys = self._keys.get(experiment, {})
        path = keys.get(key) or keys.get("", ())
        written = key in keys and path != keys.get("")  # not a built-in default
        return self._problems.where(path), dotted(path) if written else key


def load_experiments(path: Path) -> tuple[ExperimentConfig, ...]:
    """The experiments of a config, in its priority order (for "add experiments")."""
    return load_campaign(path).experiments


def _read(path: Path) -> tuple[dict[str, Any], Problems]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("config file not found", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read config ({error})", where=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = _SYNTAX_LINE.search(str(error))
        line = match.group(1) if match else "1"
        message = _SYNTAX_LINE.sub("", str(error)).strip()
        raise UserError(
            f"TOML syntax error: {message}", where=f"{path}:{line}", hint="see docs/config.md"
        ) from None
    return data, Problems(path, locate_keys(text))


def _check_table(
    table: Any, path: KeyPath, checks: dict[str, schema.Check], problems: Problems
) -> dict[str, Any]:
    """Values of a plain table whose keys all have checks."""
    if not isinstance(table, dict):
        problems.add(path, f"expected a table, got {describe(table)}")
        return {}
    values = {}
    for key, value in table.items():
        if key not in checks:
            problems.unknown_key((*path, key), checks)
            continue
        try:
            values[key] = checks[key](value)
        except schema.Invalid as error:
            problems.add((*path, key), str(error))
    return values


def _layer(table: Any, path: KeyPath, extra: set[str], problems: Problems) -> _Layer:
    """Validate one level's experiment keys; `extra` names the level-only keys allowed."""
    layer = _Layer()
    if not isinstance(table, dict):
        problems.add(path, f"expected a table, got {describe(table)}")
        return layer
    checks = {**schema.EXPERIMENT, **{k: _LEVEL_ONLY[k] for k in extra}}
    valid = (*checks, *schema.EXPERIMENT_TABLES, "params")
    for key, value in table.items():
        where = (*path, key)
        if key in schema.EXPERIMENT_TABLES:
            values = _check_table(value, where, schema.EXPERIMENT_TABLES[key], problems)
            layer.tables[key] = {k: (v, (*where, k)) for k, v in values.items()}
        elif key == "params":
            if not isinstance(value, dict):
                problems.add(where, f"expected a table, got {describe(value)}")
                continue
            space, fixed = parse_params(value, {k: (*where, k) for k in value}, problems)
            for spec in space:
                layer.params[spec.name] = (spec, None, (*where, spec.name))
            for name, fixed_value in fixed.items():
                layer.params[name] = (None, fixed_value, (*where, name))
        elif key in checks:
            try:
                layer.values[key] = (checks[key](value), where)
            except schema.Invalid as error:
                problems.add(where, str(error))
        else:
            problems.unknown_key(where, valid)
    return layer


_LEVEL_ONLY: dict[str, schema.Check] = {**schema.ENTRY_ONLY, **schema.GRID_AXES}


def _expand(
    data: dict[str, Any], defaults: _Layer, problems: Problems, locations: Locations
) -> list[ExperimentConfig]:
    """Grid experiments first (budgets, then horizons, then tasks), then explicit ones."""
    made: list[tuple[_Layer, KeyPath, bool]] = []  # (merged layer, origin, auto-named)
    if "grid" in data:
        grid = _layer(data["grid"], ("grid",), set(schema.GRID_AXES), problems)
        merged = defaults.merged(grid)
        budgets = merged.get("budgets") or _single(merged, "budget")
        horizons = merged.get("horizons") or _single(merged, "horizon")
        tasks = merged.get("tasks") or (merged.get("task", LabelSpec().task),)
        for axis, values in (("budgets", budgets), ("horizons", horizons)):
            given = isinstance(data["grid"], dict) and axis in data["grid"]
            if not values and not given:
                problems.add(("grid",), f"{axis} is required, e.g. {axis} = {_EXAMPLE[axis]}")

        def axis_path(axis: str, single: str) -> KeyPath:
            found = merged.values.get(axis) or merged.values.get(single)
            return found[1] if found else ("grid",)

        for budget in budgets:
            for horizon in horizons:
                for task in tasks:
                    point = _Layer(
                        {
                            "budget": (budget, axis_path("budgets", "budget")),
                            "horizon": (horizon, axis_path("horizons", "horizon")),
                            "task": (task, axis_path("tasks", "task")),
                        }
                    )
                    made.append((merged.merged(point), ("grid",), True))
    entries = data.get("experiments", [])
    if not isinstance(entries, list):
        problems.add(("experiments",), "expected [[experiments]] tables")
        entries = []
    for index, entry in enumerate(entries):
        where: KeyPath = ("experiments", index)
        layer = _layer(entry, where, set(schema.ENTRY_ONLY), problems)
        made.append((defaults.merged(layer), where, "name" not in layer.values))
    if not made and not problems.errors:
        problems.add(
            (), "no experiments: add a [grid] with budgets and horizons, or [[experiments]]"
        )
    several_tasks = len({m.get("task", LabelSpec().task) for m, _, _ in made}) > 1
    experiments = []
    seen: dict[str, KeyPath] = {}
    for layer, origin, auto in made:
        experiment = _experiment(layer, origin, auto and several_tasks, problems)
        if experiment is None:
            continue
        if experiment.name in seen:
            first = problems.where(seen[experiment.name])
            problems.add(
                origin, f"duplicate experiment name {experiment.name!r} (first at {first})"
            )
            continue
        seen[experiment.name] = origin
        locations.record(experiment.name, origin, layer)
        experiments.append(experiment)
    return experiments


_EXAMPLE = {"budgets": '["2M", "20M"]', "horizons": "[1, 3, 5]"}


def _single(layer: _Layer, key: str) -> tuple[Any, ...]:
    return (layer.get(key),) if key in layer.values else ()


def _experiment(
    layer: _Layer, origin: KeyPath, task_in_name: bool, problems: Problems
) -> ExperimentConfig | None:
    budget, horizon = layer.get("budget"), layer.get("horizon")
    for key, value in (("budget", budget), ("horizon", horizon)):
        if value is None:
            problems.add(origin, f"{key} is required (set it here or in [defaults])")
    if budget is None or horizon is None:
        return None
    task = layer.get("task", LabelSpec().task)
    name = layer.get("name") or f"{budget}_h{horizon}" + (f"_{task}" if task_in_name else "")
    if not _SAFE_NAME.match(name):
        problems.add((*origin, "name"), f"expected letters, digits, '_', '.' or '-', got {name!r}")
    check_name(name, budget, horizon, (*origin, "name"), problems)
    data = DataSpec(
        **{k: layer.get(k) for k in _DATA_KEYS if k in layer.values},
        labels=LabelSpec(task=task, horizon=horizon, price_basis=layer.get("price_basis", "high")),
        split=SplitSpec(**layer.table("split")),
    )
    check_data(data, layer, problems)
    space = tuple(spec for spec, _, _ in layer.params.values() if spec is not None)
    fixed = {n: value for n, (spec, value, _) in layer.params.items() if spec is None}
    check_fuse(layer, problems)
    sampler = SamplerSpec(**layer.table("sampler"))
    if sampler.kind == "grid":
        for spec in space:
            if spec.kind in ("uniform", "log_uniform") and spec.step is None:
                problems.add(
                    layer.params[spec.name][2],
                    "the grid sampler needs a finite set; use categorical, int, or a step",
                )
    return ExperimentConfig(
        name=name,
        budget=budget,
        data=data,
        n_trials=layer.get("n_trials", 50),
        search_space=space,
        fixed_params=fixed,
        sampler=sampler,
        pruner=PrunerSpec(**layer.table("pruner")),
        grid=_grid(layer),
        forced_extremes=layer.get("forced_extremes", True),
        device=layer.get("device", "auto"),
        precision=layer.get("precision", "auto"),
        fuse=layer.get("fuse", 1),
        timeout_s=layer.get("timeout"),
        max_consecutive_failures=layer.get("max_consecutive_failures", 3),
        objective=layer.get("objective", "val_bce"),
        dropout_sites=layer.get("dropout_sites", DEFAULT_SITES),
    )


def _grid(layer: _Layer) -> GridSpec:
    table = layer.table("architecture")
    known = {f.name for f in fields(GridSpec)}
    return GridSpec(**{k: v for k, v in table.items() if k in known})


def _ordered(
    experiments: list[ExperimentConfig], order: tuple[str, ...] | None, problems: Problems
) -> list[ExperimentConfig]:
    """Experiments named in `order` first, in that order; the rest keep their place."""
    if not order:
        return experiments
    by_name = {e.name: e for e in experiments}
    for name in order:
        if name not in by_name:
            guess = nearest(name, by_name)
            hint = f"did you mean {guess}?" if guess else "names are like 2M_h1"
            problems.add(("campaign", "order"), f"names unknown experiment {name!r}", hint)
    first = [by_name[n] for n in order if n in by_name]
    return first + [e for e in experiments if e.name not in order]


def _monitor(table: Any, problems: Problems) -> MonitorSpec:
    values = _check_table(table, ("monitor",), schema.MONITOR, problems)
    monitor = MonitorSpec(**values)
    check_monitor(monitor, values, problems)
    return monitor
