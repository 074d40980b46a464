"""`hpotui hosts`: the machines of a campaign as text and JSON, and commands for one;
bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.fleet.host_records import HostRecord, publish, read_command
from engine.storage.backend import open_storage
from hpotui.cli import main
from tests.fleet.campaignhelp import make_campaign


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    queue = make_campaign(open_storage(url, heartbeat_interval=None))
    publish(queue.storage, queue, HostRecord("gpu-box", "node", "cuda", 2**33, 2, ["1K_h1#4"]))
    publish(queue.storage, queue, HostRecord("laptop", "engine", "cpu", None, 1, state="idle"))
    return url


def test_lists_every_machine_as_text_and_json(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hosts", "--storage", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["host", "role", "status"]
    assert lines[1].split()[:6] == ["gpu-box", "node", "idle", "cuda", "8.0G", "2"]
    assert "1K_h1#4" in lines[1]
    assert main(["hosts", "--json", "--storage", url, "--campaign", "dist"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["campaign"] == "dist"
    assert [(h["host"], h["status"]) for h in data["hosts"]] == [
        ("gpu-box", "idle"),
        ("laptop", "idle"),
    ]


def test_a_command_is_recorded_for_the_machine(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hosts", "workers", "gpu-box", "4", "--storage", url]) == 0
    assert "gpu-box: workers 4 (by " in capsys.readouterr().out
    queue = make_campaign(open_storage(url, heartbeat_interval=None))
    command = read_command(queue.storage, queue, "gpu-box")
    assert command is not None and command.action == "workers" and command.workers == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["drain", "nobody"], "no host 'nobody' in campaign dist (hosts: gpu-box, laptop)"),
        (["drain"], "needs the HOST"),
        (["workers", "gpu-box"], "needs a number of workers"),
        (["workers", "gpu-box", "0"], "between 1 and"),
        (["stop", "gpu-box", "3"], "takes no number"),
        (["--campaign", "other"], "no campaign 'other'"),
        (["--pool-size", "1"], "--pool-size: needs at least 2 connections per process"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    url: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hosts", *args, "--storage", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
