"""Work by fit: each worker runs the architectures that fit its device, others wait.

Machines of different sizes share one campaign, and every experiment keeps its whole
architecture grid whatever machine created it. A worker knows its device and the memory
one trial may use there (`Capacity`: `--memory-limit`, else what the device has free) and
judges each architecture by its estimated peak at micro-batch 1 (engine.train.memory:
a trial that fits at micro-batch 1 runs, micro-batched as the trainer plans it).

Rules:
- A worker pops only the WAITING trials (enqueued retries, forced extremes, deferred
  trials) whose architecture fits it, and starts a fresh trial only while the experiment
  has slots that no waiting trial holds (`FitJudge.runnable`), so a small worker neither
  blocks a big trial nor burns surplus trials on an experiment whose remaining slots all
  need a bigger device.
- A freshly sampled trial whose architecture does not fit is *deferred*: recorded FAIL
  with `hpotui.deferred` (never counted, never reported as a trial) and its parameters
  enqueued again with `hpotui.needs_bytes`, where a worker that fits pops it. The search
  keeps the distribution its sampler chose; nothing is a counted failure for fit.
- A waiting trial that no live worker can fit "needs a bigger device": front-ends show
  how many (`needs_bigger`), and the experiment waits for such a machine.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from engine.errors import UserError
from engine.storage.queue import T_DEFERRED, T_EXTREME, T_NEEDS, T_RETRY_OF, Entry

MEMORY_LIMIT_ENV = "HPOTUI_MEMORY_LIMIT"  # a worker's memory limit, inherited by children
_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20}
_UNITS |= {"MIB": 2**20, "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40}
_UNITS |= {"TIB": 2**40}


def parse_bytes(text: str, where: str = "--memory-limit") -> int:
    """`8GiB`, `512M`, `2000000` -> bytes; a UserError naming `where` otherwise."""
    raw = str(text).strip().upper().replace(" ", "")
    digits = raw.rstrip("KMGTIB")
    unit = raw[len(digits) :]
    try:
        value = float(digits)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or value <= 0:
        raise UserError(
            f"expected a memory size such as 8GiB, 512MiB or a number of bytes, got {text!r}",
            where=where,
        )
    return int(value * _UNITS[unit])


def memory_limit_from_env() -> int | None:
    raw = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    return parse_bytes(raw, f"${MEMORY_LIMIT_ENV}") if raw else None


@dataclass(frozen=True)
class Capacity:
    """What one trial may use on a worker: its device and memory in bytes."""

    device: str
    memory_bytes: int


def worker_capacity(device_name: str, limit_bytes: int | None = None) -> Capacity:
    """This worker's capacity now: `limit_bytes` when given (never more than the device
    has free), else the device's free memory."""
    from engine.train.device import resolve_device
    from engine.train.memory import available_memory_bytes

    device = resolve_device(device_name)
    free = available_memory_bytes(device)
    memory = free if limit_bytes is None else min(free, limit_bytes)
    return Capacity(str(device), int(memory))


@functools.lru_cache(maxsize=4096)
def _needs(arch_key: tuple[tuple[str, int], ...], data: Any, precision: str, device: str) -> int:
    import torch

    from engine.dataset.features import tier_columns
    from engine.model.architecture import Architecture
    from engine.train.device import training_dtype
    from engine.train.memory import SAFETY, estimate_peak_bytes

    dev = torch.device(device)
    try:
        dtype = training_dtype(dev, precision) or torch.float32
    except UserError:
        dtype = torch.float32
    peak = estimate_peak_bytes(
        Architecture.from_dict(dict(arch_key)),
        len(tier_columns(data.tier)),
        1,
        context_len=data.context_len,
        patch_len=data.patch_len,
        stride=data.stride,
        dtype=dtype,
        device_type=dev.type,
    )
    return int(peak / SAFETY)  # the memory a worker needs to hold it


def needs_bytes(entry: Entry, arch_index: int, device: str) -> int:
    """Memory a worker on `device` needs for architecture `arch_index` of `entry`'s grid
    (its peak at micro-batch 1, over the memory guard's safety margin)."""
    row = entry.grid[int(arch_index)]
    key = tuple(sorted((k, int(v)) for k, v in row.items() if k != "n_params"))
    return _needs(key, entry.config.data, entry.config.precision, device)


def arch_of(t: FrozenTrial) -> int | None:
    """The grid index a trial runs (or, waiting, will run)."""
    fixed = t.system_attrs.get("fixed_params", {})
    value = t.params.get("arch", fixed.get("arch") if isinstance(fixed, dict) else None)
    return None if value is None else int(value)


class FitJudge:
    """Which experiments and waiting trials fit one worker; see the module rules.

    `device`: the worker's device override (else each experiment's); `limit_bytes`: its
    memory limit (else the device's free memory, read again at each `refresh`)."""

    def __init__(
        self,
        device: str | None = None,
        limit_bytes: int | None = None,
        capacity: Callable[[str, int | None], Capacity] = lambda d, n: worker_capacity(d, n),
    ) -> None:
        self.device = device
        self.limit_bytes = limit_bytes
        self._capacity = capacity
        self._now: dict[str, Capacity] = {}

    def refresh(self) -> None:
        """Forget the memory read before: call before each pick."""
        self._now.clear()

    def capacity(self, entry: Entry) -> Capacity:
        name = self.device or entry.config.device
        if name not in self._now:
            self._now[name] = self._capacity(name, self.limit_bytes)
        return self._now[name]

    def fits(self, entry: Entry, arch_index: int | None) -> bool:
        if arch_index is None:
            return True
        cap = self.capacity(entry)
        return needs_bytes(entry, arch_index, cap.device) <= cap.memory_bytes

    def runnable(self, entry: Entry) -> bool:
        """A waiting trial of `entry` fits, or it has a slot no waiting trial holds."""
        waiting = [t for t in entry.trials if t.state == TrialState.WAITING]
        if any(self.fits(entry, arch_of(t)) for t in waiting):
            return True
        return entry.slots_left - len(waiting) > 0

    def pop_fitting(self, study: optuna.Study, entry: Entry) -> int | None:
        """Optuna's pop of a waiting trial, limited to those that fit this worker."""
        storage = study._storage
        waiting = storage.get_all_trials(
            study._study_id, deepcopy=False, states=(TrialState.WAITING,)
        )
        for t in waiting:
            if not self.fits(entry, arch_of(t)):
                continue
            try:
                if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    return int(t._trial_id)
            except UpdateFinishedTrialError:
                continue
        return None

    def ask(self, study: optuna.Study, entry: Entry, space: dict[str, Any]) -> optuna.trial.Trial:
        """`study.ask(space)`, popping only waiting trials that fit (Study.ask pops the
        oldest waiting trial whoever asks; its pop is replaced for this one call)."""
        setattr(study, "_pop_waiting_trial_id", lambda: self.pop_fitting(study, entry))  # noqa: B010
        try:
            return study.ask(space)
        finally:
            delattr(study, "_pop_waiting_trial_id")


def defer_trial(
    storage: BaseStorage, entry: Entry, trial: FrozenTrial, capacity: Capacity, why: str = ""
) -> int:
    """Hand a RUNNING trial whose architecture does not fit this worker back to the
    campaign: FAIL, deferred (uncounted, unreported), its parameters enqueued again with
    the memory they need. Returns the bytes needed."""
    from engine.storage.recovery import trial_params

    arch = arch_of(trial)
    need = needs_bytes(entry, arch, capacity.device) if arch is not None else 0
    reason = why or (
        f"needs a bigger device: ~{_gib(need)} for architecture {arch}, "
        f"{_gib(capacity.memory_bytes)} on {capacity.device}"
    )
    tid = trial._trial_id
    storage.set_trial_user_attr(tid, T_DEFERRED, reason[:500])
    try:
        storage.set_trial_state_values(tid, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return need  # failed by a reaper meanwhile: its retry stands
    attrs: dict[str, Any] = {T_RETRY_OF: trial.number, T_NEEDS: need}
    if trial.user_attrs.get(T_EXTREME) is not None:
        attrs[T_EXTREME] = trial.user_attrs[T_EXTREME]
    study = optuna.load_study(study_name=entry.study_name, storage=storage)
    study.enqueue_trial(trial_params(trial), user_attrs=attrs, skip_if_exists=False)
    return need


def waiting_needs(entry: Entry, device: str = "cpu") -> list[int]:
    """The memory each waiting trial of `entry` needs (recorded when deferred, else
    estimated for `device`)."""
    out: list[int] = []
    for t in entry.trials:
        if t.state != TrialState.WAITING:
            continue
        recorded = t.user_attrs.get(T_NEEDS)
        arch = arch_of(t)
        if recorded is not None:
            out.append(int(recorded))
        elif arch is not None:
            out.append(needs_bytes(entry, arch, device))
    return out


def needs_bigger(entry: Entry, largest_live: int | None) -> int:
    """How many waiting trials of `entry` no live worker can hold (`largest_live`: the
    largest capacity among live workers; None: unknown, nothing is said)."""
    if largest_live is None:
        return 0
    return sum(1 for need in waiting_needs(entry) if need > largest_live)


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
