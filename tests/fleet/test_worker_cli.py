"""`hpotui worker` refusals: one line, exit 2, never a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import protocol as p
from hpotui.cli import main
from hpotui.commands.worker import describe

SECRET = "topsecret-991"


def test_needs_a_storage(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HPOTUI_STORAGE", raising=False)
    assert main(["worker", "--campaign", "x"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("hpotui: --storage: needs the campaign's storage") and err.count("\n") == 1
    )


def test_unreachable_database_is_masked(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://bob:{SECRET}@127.0.0.1:9/hpo"
    assert main(["worker", "--storage", url, "--campaign", "x"]) == 2
    out, err = capsys.readouterr()
    assert "not reachable" in err and "bob:***@" in err
    assert SECRET not in out + err and err.count("\n") == 1


def test_unknown_campaign_lists_those_in_the_storage(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.storage.backend import open_storage
    from tests.fleet.campaignhelp import make_campaign

    url = f"sqlite:///{tmp_path / 'c.db'}"
    make_campaign(open_storage(url))
    assert main(["worker", "--storage", url, "--campaign", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no campaign 'nope'" in err and "campaigns there: dist" in err and err.count("\n") == 1


def test_lines_for_people() -> None:
    started = p.TrialStarted(
        experiment="1K_h1",
        trial=3,
        params={},
        architecture={"d_model": 8, "n_layers": 1, "n_heads": 2, "d_ff": 16},
        n_params=1321,
        worker="w1@rack-7",
        host="rack-7",
    )
    assert describe(started) == "[w1@rack-7] 1K_h1 #3 started d8-L1-h2 1321 params"
    finished = p.TrialFinished(
        experiment="1K_h1",
        trial=3,
        state="interrupted",
        value=None,
        duration_s=2.0,
        worker="w1@rack-7",
        host="rack-7",
        reason="worker died",
    )
    assert describe(finished) == "[w1@rack-7] 1K_h1 #3 interrupted in 2.0s (worker died)"
    assert (
        describe(
            p.EpochEnded(
                experiment="1K_h1", trial=3, epoch=1, train_loss=1, val_loss=1, elapsed_s=1
            )
        )
        is None
    )


@pytest.mark.postgres
def test_check_honours_storage_and_masks_it(
    workspace: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fleet.conftest import FIXTURES, build_tiny
    from tests.fleet.pg_server import PASSWORD

    build_tiny(workspace)
    config = str(FIXTURES / "three_by_twenty.toml")
    assert main(["check", config, "--storage", pg_url]) == 0
    out = capsys.readouterr().out
    assert "storage: postgresql+psycopg://hpotui:***@127.0.0.1:" in out
    assert main(["check", config, "--storage", pg_url.replace(PASSWORD, "wrong-pw")]) == 2
    out, err = capsys.readouterr()
    assert "--storage: storage postgresql+psycopg://hpotui:***@" in err and "not reachable" in err
    assert PASSWORD not in out + err and "wrong-pw" not in out + err
