"""A machine whose dataset differs from the campaign's refuses to work on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import UserError
from engine.fleet.datacheck import S_DATA_SHA256, check_same_data, record_checksums
from engine.storage.backend import open_storage
from tests.fleet.campaignhelp import make_campaign
from tests.fleet.conftest import build_tiny


def test_same_data_passes_other_data_is_one_line(workspace: Path, tmp_path: Path) -> None:
    sha = build_tiny(workspace)
    queue = make_campaign(open_storage(f"sqlite:///{tmp_path / 'c.db'}"))
    record_checksums(queue)
    stored = {
        queue.storage.get_study_user_attrs(e.study_id)[S_DATA_SHA256] for e in queue.entries()
    }
    assert stored == {sha}
    assert check_same_data(queue) == [f"dataset TINY/a25/v1: sha256 {sha[:12]}"]

    other = tmp_path / "other-machine"
    other.mkdir()
    build_tiny(other, rows=599)  # a day less: other bytes, same name
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPOTUI_HOME", str(other))
        with pytest.raises(UserError) as error:
            check_same_data(queue)
    text = str(error.value)
    assert "\n" not in text and text.startswith(
        "dataset TINY/a25/v1: this machine's copy has sha256"
    )
    assert sha[:12] in text and "experiment 1K_h1" in text


def test_a_campaign_without_checksums_takes_the_first_machines(
    workspace: Path, tmp_path: Path
) -> None:
    sha = build_tiny(workspace)
    queue = make_campaign(open_storage(f"sqlite:///{tmp_path / 'c.db'}"))
    checked: dict[str, str] = {}
    check_same_data(queue, checked)
    assert checked == {"TINY/a25/v1": sha}
    for entry in queue.entries():
        assert queue.storage.get_study_user_attrs(entry.study_id)[S_DATA_SHA256] == sha
    assert check_same_data(queue, checked) == []  # nothing re-hashed


def test_a_damaged_local_copy_is_refused(workspace: Path, tmp_path: Path) -> None:
    build_tiny(workspace)
    queue = make_campaign(open_storage(f"sqlite:///{tmp_path / 'c.db'}"))
    record_checksums(queue)
    parquet = workspace / "data" / "processed" / "v1" / "TINY_a25.parquet"
    parquet.write_bytes(parquet.read_bytes()[:-10])
    with pytest.raises(UserError, match="checksum mismatch"):
        check_same_data(queue)
