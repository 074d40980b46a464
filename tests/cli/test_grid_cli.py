"""`hpotui grid` as a user runs it: the table, --json, exit 2 with one line on bad input."""

from __future__ import annotations

import json

import pytest

from hpotui.cli import main


def test_json_gives_the_reference_grid_and_its_extremes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grid", "200M", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["size"] == len(data["grid"]) == 125
    assert data["n_features"] == 25
    assert data["n_extremes"] == len(data["extremes"]) <= 6
    sizes = [row["n_params"] for row in data["grid"]]
    assert sizes == sorted(sizes)
    by_index = {row["index"]: row for row in data["grid"]}
    for row in data["extremes"]:
        assert by_index[row["index"]] == row
    d_models = {row["d_model"] for row in data["extremes"]}
    assert min(r["d_model"] for r in data["grid"]) in d_models
    assert max(r["d_model"] for r in data["grid"]) in d_models


def test_table_lists_every_architecture_and_counts_extremes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["grid", "2M"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("budget 2M (2M ±25%), 25 features: 80 architectures")
    assert "     64     48     2    256" in out  # the reference's best 2M architecture
    assert "distinct extremes (of 6 edges)" in out


def test_features_and_tolerance_change_the_grid(capsys: pytest.CaptureFixture[str]) -> None:
    main(["grid", "2M", "--json", "--features", "5", "--tolerance", "0.1"])
    data = json.loads(capsys.readouterr().out)
    assert data["n_features"] == 5 and data["tolerance"] == 0.1
    assert data["size"] != 80


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["grid", "2Q"], "cannot read parameter budget '2Q'"),
        (["grid", "1K"], "budget 1K"),
        (["grid", "2M", "--features", "0"], "--features must be >= 1"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
