"""A campaign as validated values: the output of `engine.campaign.config.load_campaign`.

Each experiment's resolved config (`ExperimentConfig.to_dict()`) is stored with its
Optuna study and with every trial, so any number can be traced to what produced it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.dataset.spec import DataSpec
from engine.model.architecture import GridSpec
from engine.model.dropout_sites import DEFAULT as DEFAULT_SITES
from engine.notify.config import NotifySpec

ParamKind = Literal["log_uniform", "uniform", "int", "categorical"]


@dataclass(frozen=True)
class ParamSpec:
    """One sampled hyperparameter; `name` is a field of `engine.train.config.TrainParams`."""

    name: str
    kind: ParamKind
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class SamplerSpec:
    kind: Literal["tpe", "random", "grid"] = "tpe"
    seed: int | None = 0
    multivariate: bool = True
    constant_liar: bool | None = None  # None: on when trials run in parallel
    n_startup_trials: int = 10


@dataclass(frozen=True)
class PrunerSpec:
    kind: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = 5
    n_warmup_steps: int = 5


@dataclass(frozen=True)
class MonitorSpec:
    """Thermal and memory policy thresholds (see engine.monitor.policy)."""

    warning_c: float = 85.0
    critical_c: float = 95.0
    hysteresis_c: float = 5.0
    cool_down_s: float = 60.0
    on_unknown_temperature: Literal["run", "pause"] = "run"
    min_available_memory_gb: float = 1.0
    max_swap_growth_mb_per_s: float = 50.0
    interval_s: float = 1.0


@dataclass(frozen=True)
class ReportSpec:
    """How `hpotui report` retrains (docs/report.md): the top configurations of each
    search x seeds, in each test period; its command-line flags override these."""

    top: int = 3
    seeds: int = 3
    workers: int | Literal["auto"] = "auto"  # retraining processes


@dataclass(frozen=True)
class ExperimentConfig:
    name: str  # e.g. "2M_h1"
    budget: str  # e.g. "2M"
    data: DataSpec  # includes the horizon and task (data.labels)
    n_trials: int = 50
    search_space: tuple[ParamSpec, ...] = ()
    fixed_params: dict[str, Any] = field(default_factory=dict)  # TrainParams not searched
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    grid: GridSpec = field(default_factory=GridSpec)
    forced_extremes: bool = True
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    fuse: int | Literal["auto"] = 1  # trials of one architecture trained as one model
    timeout_s: float | None = None  # none unless the config sets one
    max_consecutive_failures: int = 3
    # "val_bce" | "val_auc": what picks the best epoch and trial (docs/model.md)
    objective: Literal["val_bce", "val_auc"] = "val_bce"
    # where the model applies dropout (engine.model.dropout_sites), resolved to sites
    dropout_sites: tuple[str, ...] = DEFAULT_SITES

    @property
    def horizon(self) -> int:
        return self.data.labels.horizon

    @property
    def task(self) -> str:
        return self.data.labels.task

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        d = dict(data)
        return cls(
            name=d["name"],
            budget=d["budget"],
            data=DataSpec.from_dict(d["data"]),
            n_trials=int(d["n_trials"]),
            search_space=tuple(
                ParamSpec(**{**p, "choices": tuple(p.get("choices", ()))})
                for p in d.get("search_space", ())
            ),
            fixed_params=dict(d.get("fixed_params", {})),
            sampler=SamplerSpec(**d.get("sampler", {})),
            pruner=PrunerSpec(**d.get("pruner", {})),
            grid=_grid_from_dict(d.get("grid", {})),
            forced_extremes=bool(d.get("forced_extremes", True)),
            device=d.get("device", "auto"),
            precision=d.get("precision", "auto"),
            fuse=d.get("fuse", 1),
            timeout_s=d.get("timeout_s"),
            max_consecutive_failures=int(d.get("max_consecutive_failures", 3)),
            objective=d.get("objective", "val_bce"),  # studies from before it: BCE
            # studies from before the option ran the residual sites
            dropout_sites=tuple(d.get("dropout_sites", DEFAULT_SITES)),
        )


@dataclass(frozen=True)
class Campaign:
    name: str
    path: Path
    experiments: tuple[ExperimentConfig, ...]  # in priority order
    workers: int | Literal["auto"] = "auto"
    storage: str | None = None  # None: journal file under outputs/<name>/
    storage_patience_s: float = 300.0  # how long a database outage is waited out
    monitor: MonitorSpec = field(default_factory=MonitorSpec)
    notify: NotifySpec = field(default_factory=NotifySpec)  # URLs are secrets: never stored
    report: ReportSpec = field(default_factory=ReportSpec)

    def experiment(self, name: str) -> ExperimentConfig:
        for exp in self.experiments:
            if exp.name == name:
                return exp
        raise KeyError(name)


def _grid_from_dict(data: dict[str, Any]) -> GridSpec:
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return GridSpec(**values)
