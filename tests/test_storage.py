"""engine.storage.backend: default journal, opening real storages, checks that touch nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from engine.storage.backend import (
    check_storage,
    default_storage_url,
    is_journal,
    journal_path,
    mask_url,
    open_storage,
)


def test_default_is_a_journal_under_the_campaign_outputs(workspace: Path) -> None:
    url = default_storage_url("demo")
    assert Path(url) == workspace / "outputs" / "demo" / "optuna.journal"
    assert is_journal(url)


def test_check_creates_nothing_and_open_creates_the_journal(workspace: Path) -> None:
    url = default_storage_url("fresh")
    assert check_storage(url) is None
    assert not (workspace / "outputs" / "fresh").exists()  # check only looks
    storage = open_storage(url)
    optuna.create_study(study_name="s", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), 2
    )
    assert Path(url).is_file()
    assert check_storage(url) is None  # an existing journal is fine


def test_journal_is_shared_between_processes(workspace: Path) -> None:
    """A study written by one process is read, with its trials, by another."""
    url = default_storage_url("shared")
    script = (
        "import optuna, sys\n"
        "from engine.storage.backend import open_storage\n"
        "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
        "study = optuna.create_study(study_name='s', storage=open_storage(sys.argv[1]), "
        "load_if_exists=True)\n"
        "study.optimize(lambda t: t.suggest_float('x', 0, 1), n_trials=3)\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script, url], check=True, timeout=60)
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    assert len(study.trials) == 6
    assert {t.number for t in study.trials} == set(range(6))


def test_journal_url_forms(workspace: Path) -> None:
    assert journal_path("journal:///abs/x.journal") == Path("/abs/x.journal")
    assert journal_path("journal:rel/x.journal") == workspace / "rel" / "x.journal"
    assert journal_path("outputs/a/optuna.journal") == workspace / "outputs/a/optuna.journal"


def test_sqlite_storage_opens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    assert check_storage(url) is None
    assert not (tmp_path / "o.db").exists()
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    study.optimize(lambda t: t.suggest_int("x", 0, 3), 1)
    assert (
        optuna.load_study(study_name="s", storage=open_storage(url)).trials[0].state.is_finished()
    )


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://bob:s3cr@t@db.example:5432/hpo", "postgresql://bob:***@db.example:5432/hpo"),
        ("postgresql+psycopg://bob:pw@localhost/hpo", "postgresql+psycopg://bob:***@localhost/hpo"),
        ("mysql://u:p@h/db?password=p2&x=1", "mysql://u:***@h/db?password=***&x=1"),
        ("postgresql://bob@host/db", "postgresql://bob@host/db"),
        ("outputs/demo/optuna.journal", "outputs/demo/optuna.journal"),
    ],
)
def test_mask_url_hides_passwords(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_check_reports_a_folder_that_cannot_hold_the_journal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    problem = check_storage(str(blocker / "sub" / "optuna.journal"))
    assert problem is not None and "is not a folder" in problem
    problem = check_storage(str(tmp_path))
    assert problem is not None and "is a folder" in problem


def test_check_rejects_unknown_schemes_and_memory(tmp_path: Path) -> None:
    problem = check_storage("redis://localhost:6379")
    assert problem is not None and "unknown scheme 'redis'" in problem
    problem = check_storage("sqlite:///:memory:")
    assert problem is not None and "in-memory" in problem


def test_check_unreachable_database_is_one_masked_line() -> None:
    problem = check_storage("postgresql://bob:topsecret@127.0.0.1:9/hpo")
    assert problem is not None
    assert "not reachable" in problem and "topsecret" not in problem and "\n" not in problem


@pytest.mark.postgres
def test_postgres_storage_round_trip() -> None:
    from tests.fleet.pg_server import PASSWORD, find_bin_dir, running_server

    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    with running_server() as url:
        assert check_storage(url) is None
        assert check_storage(url.replace(PASSWORD, "wrong")) is not None
        storage = open_storage(url, heartbeat_interval=5, grace_period=20)
        study = optuna.create_study(storage=storage, study_name="pg")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), 2)
        assert len(optuna.load_study(study_name="pg", storage=open_storage(url)).trials) == 2
        assert PASSWORD not in mask_url(url)


def test_check_recognises_files_that_are_not_storages(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    problem = check_storage(str(text))
    assert problem is not None and "not an Optuna journal file" in problem
    problem = check_storage(f"sqlite:///{text}")
    assert problem is not None and "not an SQLite database" in problem
