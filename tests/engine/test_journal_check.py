"""Journal integrity on real files: a torn tail is cut back (with a backup), a damaged
middle stops the run with exit 2, and appends never leave a partial record."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import optuna
import pytest

from engine.storage import journal_check
from engine.storage.backend import open_storage
from engine.storage.journal_check import (
    CheckedJournalBackend,
    JournalDamaged,
    check_and_repair,
    scan,
)


def _study_journal(path: Path, n_trials: int = 3) -> list[float]:
    """A real Optuna journal at `path` with `n_trials` completed trials; their values."""
    storage = open_storage(str(path))
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=n_trials)
    return [t.value for t in study.trials if t.value is not None]


def _values(path: Path) -> list[float]:
    study = optuna.load_study(study_name="s", storage=open_storage(str(path)))
    return [t.value for t in study.trials if t.value is not None]


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.damaged-*"))


def test_intact_journal_scans_clean_and_is_left_alone(tmp_path: Path) -> None:
    journal = tmp_path / "optuna.journal"
    _study_journal(journal)
    before = journal.read_bytes()
    found = scan(journal)
    assert found.damaged_at is None and not found.torn_tail
    assert found.records == before.count(b"\n") and found.good_end == len(before)
    warnings: list[str] = []
    check_and_repair(journal, warnings.append)
    assert warnings == [] and journal.read_bytes() == before and _backups(journal) == []


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:-150], id="truncated-150-bytes"),
        pytest.param(lambda data: data + b"\x00\xff\xfegarbage\n\x9czz\n{not json", id="garbage"),
        pytest.param(
            lambda data: data + '{"op_code":5,"note":"café'.encode()[:-1], id="multibyte-cut"
        ),
        pytest.param(lambda data: data + b"\x00" * 4096, id="zeros-after-power-cut"),
    ],
)
def test_torn_tail_is_backed_up_cut_back_and_the_study_reads_and_grows(
    tmp_path: Path, damage: object
) -> None:
    journal = tmp_path / "optuna.journal"
    values = _study_journal(journal, n_trials=4)
    intact = journal.read_bytes()
    damaged = damage(intact)  # type: ignore[operator]
    journal.write_bytes(damaged)

    found = scan(journal)
    assert found.torn_tail and found.damaged_at is None
    warnings: list[str] = []
    storage = open_storage(str(journal), warn=warnings.append)

    assert len(warnings) == 1 and str(journal) in warnings[0] and "cut back" in warnings[0]
    [backup] = _backups(journal)
    assert backup.read_bytes() == damaged  # the whole damaged file is kept
    assert str(backup) in warnings[0]
    kept = journal.read_bytes()
    assert intact.startswith(kept) and kept.endswith(b"\n")
    # every complete trial before the damage is intact; the study grows on the cut file
    study = optuna.load_study(study_name="s", storage=storage)
    survivors = [t.value for t in study.trials if t.value is not None]
    assert survivors == values[: len(survivors)] and len(survivors) >= len(values) - 1
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(_values(journal)) == len(survivors) + 2
    assert scan(journal).good_end == journal.stat().st_size


@pytest.mark.parametrize(
    ("bad_line", "what"),
    [
        (b'{"op_code":4,"trial_id"\n', "not a JSON record"),
        (b"\xff\xfe\n", "not UTF-8 text"),
        (b"[1, 2]\n", "not an Optuna journal record"),
    ],
)
def test_damaged_middle_is_refused_with_file_offset_and_what_to_do(
    tmp_path: Path, bad_line: bytes, what: str
) -> None:
    journal = tmp_path / "optuna.journal"
    _study_journal(journal, n_trials=2)
    data = journal.read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 1
    damaged = data[:cut] + bad_line + data[cut:]
    journal.write_bytes(damaged)

    with pytest.raises(JournalDamaged) as raised:
        open_storage(str(journal))
    message = str(raised.value)
    assert str(journal) in message and f"byte {cut}" in message and what in message
    assert f"truncate -s {cut}" in message and "backup" in message
    assert raised.value.exit_code == 2
    assert journal.read_bytes() == damaged and _backups(journal) == []  # nothing touched


def test_a_failed_append_leaves_no_partial_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "optuna.journal"
    _study_journal(journal, n_trials=1)
    before = journal.read_bytes()
    backend = CheckedJournalBackend(journal, warn=lambda line: None)
    real_write = os.write

    def disk_full_after_a_few_bytes(fd: int, data: object) -> int:
        real_write(fd, bytes(data)[:7])  # type: ignore[call-overload]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_check.os, "write", disk_full_after_a_few_bytes)
    with pytest.raises(OSError, match="No space"):
        backend.append_logs([{"op_code": 0, "study_name": "x", "directions": [1]}])
    monkeypatch.undo()
    assert journal.read_bytes() == before


def test_an_append_after_a_torn_write_cuts_the_tear_first(tmp_path: Path) -> None:
    """A writer killed mid-record after this process opened the journal."""
    journal = tmp_path / "optuna.journal"
    _study_journal(journal, n_trials=1)
    storage = open_storage(str(journal))
    intact = journal.read_bytes()
    with journal.open("ab") as file:
        file.write(b'{"op_code":4,"trial_id":0,"sta')
    warnings: list[str] = []
    backend = CheckedJournalBackend(journal, warn=warnings.append)
    record = {"op_code": 0, "study_name": "second", "directions": [1]}
    backend.append_logs([record])
    assert (
        journal.read_bytes() == intact + json.dumps(record, separators=(",", ":")).encode() + b"\n"
    )
    assert len(warnings) == 1 and len(_backups(journal)) == 1
    assert optuna.get_all_study_names(storage) == ["s", "second"]
