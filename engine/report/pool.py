"""Train the report's runs in parallel worker processes (or in this one).

A demo report trains hundreds of small models (top configurations x seeds x test
periods x experiments). One small model does not keep two CPU cores busy, so the runs
are spread over `workers` processes, each with one torch thread, each loading the data
once per (data spec, period) it meets. Only the parent process writes to the storage
(`on_done`), so the journal has one writer and an interrupted report loses at most the
runs in flight. With `workers = 1` everything trains in this process, on the data the
caller's `load` gives (the tests' synthetic data).

A run that fails for a reason its experiment owns (a dataset that is missing, a
configuration that does not fit in memory) comes back as an error text; the caller marks
that experiment and goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from engine.dataset.windows import PreparedData
from engine.report.retrain import RetrainTask, run_task

DataLoader = Callable[[RetrainTask], PreparedData]
Done = Callable[[RetrainTask, dict[str, Any] | None, str], None]  # attrs or None, error


def default_workers() -> int:
    """One worker per CPU core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


def _failure(error: BaseException) -> str | None:
    """The text of an error that belongs to the run's experiment; None: a bug, re-raise."""
    import torch

    from engine.errors import UserError
    from engine.train.result import TrialDoesNotFit

    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, (TrialDoesNotFit, torch.OutOfMemoryError)):
        return f"{type(error).__name__}: {error}"
    return None


def run_all(tasks: Iterable[RetrainTask], workers: int, load: DataLoader, on_done: Done) -> None:
    """Train every task; `on_done(task, attrs, "")` or `on_done(task, None, error)` in the
    parent process as each finishes. Tasks of an experiment that already failed are
    skipped (reported with the same error)."""
    todo = list(tasks)
    if workers <= 1 or len(todo) <= 1:
        _serial(todo, load, on_done)
    else:
        _parallel(todo, workers, on_done)


def _serial(tasks: list[RetrainTask], load: DataLoader, on_done: Done) -> None:
    failed: dict[str, str] = {}
    for task in tasks:
        if task.experiment in failed:
            on_done(task, None, failed[task.experiment])
            continue
        try:
            attrs = run_task(task, load(task))
        except Exception as error:
            text = _failure(error)
            if text is None:
                raise
            failed[task.experiment] = text
            on_done(task, None, text)
            continue
        on_done(task, attrs, "")


_CACHE: dict[str, PreparedData] = {}


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _work(task: RetrainTask) -> tuple[dict[str, Any] | None, str]:
    """In a worker process: load the period's data (cached), train, test."""
    from engine.report.data import load_period

    key = repr((task.spec, task.period, task.options.get("device")))
    try:
        if key not in _CACHE:
            _CACHE.clear()  # one spec and period at a time: tasks come grouped
            _CACHE[key] = load_period(task.data_spec(), task.period, task.options["device"])
        return run_task(task, _CACHE[key]), ""
    except Exception as error:
        text = _failure(error)
        if text is None:
            raise
        return None, text


def _parallel(tasks: list[RetrainTask], workers: int, on_done: Done) -> None:
    import multiprocessing

    failed: dict[str, str] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
        pending: dict[Future[tuple[dict[str, Any] | None, str]], RetrainTask] = {}
        queue = list(reversed(tasks))
        try:
            while queue or pending:
                while queue and len(pending) < 2 * workers:
                    task = queue.pop()
                    if task.experiment in failed:
                        on_done(task, None, failed[task.experiment])
                        continue
                    pending[pool.submit(_work, task)] = task
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = pending.pop(future)
                    attrs, error = future.result()
                    if error:
                        failed[task.experiment] = error
                    on_done(task, attrs, error)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
