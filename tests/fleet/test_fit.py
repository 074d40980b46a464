"""Work by fit: a small and a big worker on one campaign split its architectures by
memory; what fits nobody waits as "needs a bigger device", never a counted failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from engine import protocol as p
from engine.errors import UserError
from engine.storage.backend import open_storage
from engine.storage.queue import T_COUNTED, T_DEFERRED, T_NEEDS, CampaignQueue, is_counted
from engine.worker.fit import FitJudge, arch_of, needs_bigger, needs_bytes, parse_bytes
from engine.worker.trial_loop import Worker
from tests.fleet.campaignhelp import make_campaign


def _queue(tmp_path: Path) -> CampaignQueue:
    """The fixture campaign with its first experiment only (20 trials)."""
    queue = make_campaign(open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=None))
    for entry in queue.entries(with_trials=False)[1:]:
        queue.skip(entry.name)
    return queue


def _limits(queue: CampaignQueue) -> tuple[int, int, set[int]]:
    """(small, big) worker memory and the grid indices only the big one fits."""
    entry = queue.entries()[0]
    needs = [needs_bytes(entry, i, "cpu") for i in range(len(entry.grid))]
    assert len(set(needs)) > 1, "the grid needs architectures of different sizes"
    small = sorted(set(needs))[len(set(needs)) // 2 - 1]  # about half the grid fits it
    return small, max(needs), {i for i, n in enumerate(needs) if n > small}


def _worker(queue: CampaignQueue, name: str, limit: int) -> Worker:
    events: list[p.Event] = []
    return Worker(
        queue.storage, queue.campaign, worker_id=name, emit=events.append, memory_limit=limit
    )


def _run_one(worker: Worker) -> tuple[str, int] | None:
    """Ask like Worker.run_one, but 'train' in no time: tell a value."""
    asked = worker._ask()
    if asked is None:
        return None
    if isinstance(asked, str):
        return (asked, -1)
    entry, study, trial = asked
    arch = int(trial.params["arch"])
    study.tell(trial, 0.5)
    worker.queue.refresh()
    return entry.name, arch


def test_parse_bytes_and_its_message() -> None:
    assert parse_bytes("8GiB") == 8 * 2**30
    assert parse_bytes("512M") == 512 * 2**20
    assert parse_bytes("1000") == 1000
    for bad in ("lots", "-1G", "8 parsecs", "0"):
        with pytest.raises(UserError, match=r"--memory-limit.*8GiB"):
            parse_bytes(bad)


def test_a_small_worker_defers_what_does_not_fit_and_a_big_one_runs_it(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    small_limit, big_limit, big_only = _limits(queue)
    small = _worker(queue, "small", small_limit)
    big = _worker(queue, "big", big_limit)

    ran_small: list[tuple[str, int]] = []
    for _ in range(12):  # the small worker alone first
        got = _run_one(small)
        if got is None:
            break
        if got[0] != "deferred":
            ran_small.append(got)
    assert ran_small and all(arch not in big_only for _, arch in ran_small)
    first = queue.entries()[0]
    waiting = [t for t in first.trials if t.state == TrialState.WAITING]
    deferred = [t for t in first.trials if t.user_attrs.get(T_DEFERRED)]
    assert deferred, "the random sampler never drew a big architecture: the test proves nothing"
    assert all(arch_of(t) in big_only and t.user_attrs.get(T_NEEDS) for t in waiting)
    assert needs_bigger(first, small_limit) == len(waiting) > 0
    assert needs_bigger(first, big_limit) == 0
    assert needs_bigger(first, None) == 0  # unknown capacity: nothing said

    ran_big: list[tuple[str, int]] = []
    while not queue.all_terminal():
        got = _run_one(big) or _run_one(small)
        assert got is not None, "nobody could run what is left"
        if got[0] != "deferred":
            ran_big.append(got)
    assert any(arch in big_only for _, arch in ran_big)
    for entry in queue.entries()[:1]:
        assert entry.stored_state == "done"
        assert sum(is_counted(t) for t in entry.trials) == entry.config.n_trials
        assert not [t for t in entry.trials if t.user_attrs.get(T_COUNTED)]  # no failure


def test_a_waiting_trial_too_big_is_not_popped_by_a_small_worker(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    small_limit, _, big_only = _limits(queue)
    entry = queue.entries()[0]
    import optuna

    study = optuna.load_study(study_name=entry.study_name, storage=queue.storage)
    big_arch = min(big_only)
    study.enqueue_trial({"arch": big_arch, "learning_rate": 0.005, "dropout": 0.1})
    judge = FitJudge("cpu", small_limit)
    entry = queue.entries()[0]
    assert judge.runnable(entry)  # fresh slots remain
    from engine.campaign.search import distributions

    trial = judge.ask(study, entry, distributions(entry.config, len(entry.grid)))
    assert trial.number != 0 or int(trial.params["arch"]) != big_arch
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert [arch_of(t) for t in waiting] == [big_arch]  # still there for a big worker


def test_a_hold_ends_the_asking_between_deferrals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drain (or the thermal hold) arriving while a small worker defers what it drew:
    no fresh ask after the hold ("within one trial", seen as a drained node starting
    two trials after it obeyed)."""
    queue = _queue(tmp_path)
    small_limit, _, _ = _limits(queue)
    worker = _worker(queue, "small", small_limit)
    asks: list[int] = []

    def ask_and_defer() -> str:  # every draw too big for this worker; the hold arrives
        asks.append(1)
        worker.flags.hold = True
        return "deferred"

    monkeypatch.setattr(worker, "_ask", ask_and_defer)
    assert worker.run_one() is False
    assert len(asks) == 1
