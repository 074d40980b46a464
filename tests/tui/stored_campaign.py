"""A campaign written into a real Optuna journal the way the engine and its workers write
one (studies through `CampaignQueue`, trials through Optuna's ask / report / tell with the
workers' user attributes), with no engine and no training: for the dashboard's tests of
finished campaigns and for `bench/first_frame.py`.

Every trial reports a validation loss per epoch (its intermediate values) and stores its
train losses, architecture, parameter count, worker, host and metrics; some are pruned
(at a reported epoch), some fail. Experiments end `done` unless `state` says otherwise.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from engine.campaign.config import load_campaign
from engine.campaign.plan import Plan, plan_experiment
from engine.campaign.search import distributions
from engine.storage.backend import default_storage_url, open_storage
from engine.storage.queue import T_COUNTED, T_HOST, T_PID, T_REASON, T_WORKER, CampaignQueue
from engine.storage.recovery import HOST
from engine.storage.trial_records import TRAIN_LOSSES

CONFIG = """\
[campaign]
name = "{name}"
workers = 2

[defaults]
dataset = "SP500"
tier = "a25"
task = "threshold_1pct"
price_basis = "high"
n_trials = {trials}
forced_extremes = true
device = "cpu"
precision = "fp32"

[defaults.params]
learning_rate = {{ log_uniform = [1e-3, 1e-2] }}
batch_size = {{ categorical = [512, 1024] }}
dropout = {{ uniform = [0.0, 0.2] }}
epochs = {epochs}
patience = 2

[defaults.sampler]
kind = "random"
seed = 0

[defaults.pruner]
kind = "median"

[defaults.architecture]
d_model = [16, 32, 64]
n_layers = [1, 2, 4, 6]
n_heads = [2, 4]
ff_ratio = [2, 4]

[grid]
budgets = {budgets}
horizons = {horizons}
"""


@dataclass(frozen=True)
class Stored:
    config: Path
    campaign: str
    journal: Path
    n_trials: int  # trials written (every state)


def write_stored_campaign(
    workspace: Path,
    *,
    name: str = "stored",
    budgets: tuple[str, ...] = ("10K", "30K"),
    horizons: tuple[int, ...] = (1, 5),
    trials: int = 6,
    epochs: int = 4,
    prune_every: int = 3,
    fail_every: int = 0,
    state: str = "done",
    seed: int = 0,
) -> Stored:
    """Write configs/<name>.toml and its campaign's journal under `workspace` (which must
    be $HPOTUI_HOME). Trial k of an experiment is pruned when k % prune_every == 1 (at
    its middle epoch), failed when fail_every and k % fail_every == fail_every - 1."""
    assert os.environ.get("HPOTUI_HOME") == str(workspace), "workspace must be $HPOTUI_HOME"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (workspace / "configs").mkdir(parents=True, exist_ok=True)
    (workspace / "outputs").mkdir(parents=True, exist_ok=True)
    config = workspace / "configs" / f"{name}.toml"
    config.write_text(
        CONFIG.format(
            name=name,
            trials=trials,
            epochs=epochs,
            budgets=json.dumps(list(budgets)),
            horizons=json.dumps(list(horizons)),
        )
    )
    campaign = load_campaign(config)
    url = default_storage_url(campaign.name)
    storage = open_storage(url, heartbeat_interval=None)
    queue = CampaignQueue(storage, campaign.name)
    plan = Plan()
    written = 0
    for i, exp in enumerate(campaign.experiments):
        plan_experiment(exp, plan)
        grid = plan.grids[exp.name]
        entry, _ = queue.ensure(exp, grid, plan.space_keys[exp.name], plan.extremes[exp.name])
        study = optuna.load_study(
            study_name=entry.study_name,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(seed=seed + i),
        )
        space = distributions(exp, len(grid))
        for k in range(trials):
            _one_trial(
                study, storage, space, grid, exp.horizon, i, k, epochs, prune_every, fail_every
            )
            written += 1
        queue.set_state(exp.name, state)
    return Stored(config, campaign.name, Path(url), written)


def _one_trial(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    space: dict[str, optuna.distributions.BaseDistribution],
    grid: list[dict[str, int]],
    horizon: int,
    experiment: int,
    k: int,
    epochs: int,
    prune_every: int,
    fail_every: int,
) -> None:
    trial = study.ask(space)
    tid = trial._trial_id
    arch = grid[int(trial.params["arch"])]
    for key, value in (
        (T_WORKER, f"w{k % 2 + 1}"),
        (T_HOST, HOST),
        (T_PID, 1),
        ("architecture", {k2: v for k2, v in arch.items() if k2 != "n_params"}),
        ("n_params", int(arch["n_params"])),
    ):
        storage.set_trial_user_attr(tid, key, value)
    # a loss that falls with epochs and differs per trial, experiment and horizon
    base = 0.66 + 0.004 * horizon + 0.01 * math.sin(k * 1.7 + experiment) - 0.002 * experiment
    pruned = prune_every > 0 and k % prune_every == 1
    failed = fail_every > 0 and k % fail_every == fail_every - 1
    last = max(1, epochs // 2) if pruned else (1 if failed else epochs)
    losses: list[list[float]] = []
    val = base
    for epoch in range(1, last + 1):
        val = base + 0.05 / epoch + (0.02 if pruned else 0.0)
        losses.append([epoch, val + 0.01])
        trial.report(val, epoch)
    storage.set_trial_user_attr(tid, TRAIN_LOSSES, losses)
    if pruned:
        storage.set_trial_user_attr(tid, T_REASON, f"pruned at epoch {last}")
        study.tell(trial, state=TrialState.PRUNED)
    elif failed:
        storage.set_trial_user_attr(tid, T_COUNTED, True)
        storage.set_trial_user_attr(tid, T_REASON, "RuntimeError: loss is nan")
        study.tell(trial, state=TrialState.FAIL)
    else:
        storage.set_trial_user_attr(tid, "metrics", {"val_bce": val, "val_auc": 0.55})
        study.tell(trial, val)
