"""The journal's lock: a writer killed with SIGKILL while holding it must not stall the
others (Optuna's lock file made every process wait 30 s after such a crash), and it must
still exclude other processes and other threads while its holder lives."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna

from engine.filelock import JournalFlock
from engine.storage.backend import open_storage

HOLD_AND_SIGNAL = """
import sys, time
from engine.filelock import JournalFlock
lock = JournalFlock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _holder(journal: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_SIGNAL, str(journal), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_writer_killed_holding_the_lock_does_not_stall_the_next(tmp_path: Path) -> None:
    journal = tmp_path / "optuna.journal"
    storage = open_storage(str(journal))
    study = optuna.create_study(study_name="s", storage=storage)
    holder = _holder(journal, 60)
    holder.kill()  # SIGKILL while holding
    holder.wait()
    start = time.monotonic()
    study.enqueue_trial({"x": 1.0})
    # Optuna's own lock file made the next writer wait 30 s before stealing it; the margin
    # under that is for a loaded machine
    assert time.monotonic() - start < 20
    assert len(optuna.load_study(study_name="s", storage=open_storage(str(journal))).trials) == 1


def test_the_lock_excludes_another_process_while_its_holder_lives(tmp_path: Path) -> None:
    journal = tmp_path / "optuna.journal"
    storage = open_storage(str(journal))
    study = optuna.create_study(study_name="s", storage=storage)
    holder = _holder(journal, 1.5)
    start = time.monotonic()
    study.enqueue_trial({"x": 1.0})  # waits for the holder to exit
    waited = time.monotonic() - start
    holder.wait()
    assert waited > 0.5


def test_the_lock_excludes_threads_of_one_process(tmp_path: Path) -> None:
    lock = JournalFlock(tmp_path / "j")
    inside = 0
    overlaps = 0

    def work() -> None:
        nonlocal inside, overlaps
        for _ in range(200):
            lock.acquire()
            inside += 1
            if inside > 1:
                overlaps += 1
            time.sleep(0.0001)
            inside -= 1
            lock.release()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == 0
