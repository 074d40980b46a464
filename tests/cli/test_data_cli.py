"""`hpotui data ...` as a user runs it: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpotui.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "sp500.csv.gz"


def hpotui(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script's code in a fresh process, offline, in `cwd`."""
    env = {k: v for k, v in os.environ.items() if k != "HPOTUI_HOME"}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from hpotui.cli import main; sys.exit(main())", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_build_verify_list_on_the_embedded_sample(tmp_path: Path) -> None:
    """The issue's 'done when': a fresh workspace, no network, no manual step."""
    built = hpotui("data", "build", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith(
        "built SP500/a25/v1: 4832 rows, 1999-10-18..2018-12-31, 25 columns"
    )
    verified = hpotui("data", "verify", cwd=tmp_path)
    assert (verified.returncode, verified.stdout) == (
        0,
        "ok: 1 raw and 1 processed file(s), every checksum matches\n",
    )
    listed = hpotui("data", "list", "--json", cwd=tmp_path)
    document = json.loads(listed.stdout)
    assert [e["name"] for e in document["raw"]] == ["SP500"]
    assert document["processed"][0]["path"] == "data/processed/v1/SP500_a25.parquet"
    # tamper: one changed byte is reported, exit 1
    target = tmp_path / "data/processed/v1/SP500_a25.parquet"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    verified = hpotui("data", "verify", cwd=tmp_path)
    assert verified.returncode == 1
    assert verified.stdout.startswith("processed SP500/a25/v1: checksum mismatch in ")
    assert "1 problem(s) found" in verified.stderr


def test_a_bad_file_exits_2_with_row_level_lines_and_writes_nothing(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with gzip.open(SAMPLE, "rt") as stream:
        lines = stream.read().splitlines()[:301]
    lines[3] = lines[3].replace(lines[3].split(",")[6], "-7")
    lines[50] = "02/30/1999" + lines[50][lines[50].index(",") :]
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines))
    assert main(["data", "import", str(bad), "--ticker", "SPY"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"hpotui: {bad}: line 4 (1999-01-06): negative volume",
        f"hpotui: {bad}: line 51 (02/30/1999): unparseable date '02/30/1999'",
    ]
    assert not (workspace / "data").exists()


def test_import_build_list_in_process(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "nasdaq.csv.gz"
    shutil.copy(SAMPLE.with_name("nasdaq.csv.gz"), source)
    assert main(["data", "import", str(source), "--ticker", "^IXIC"]) == 0
    assert capsys.readouterr().out.startswith("imported IXIC: 5031 rows, 1999-01-04..2018-12-31")
    assert main(["data", "import", str(source), "--ticker", "IXIC"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["data", "build", "--ticker", "IXIC", "--version", "3"]) == 0
    assert capsys.readouterr().out.startswith("built IXIC/a25/v3: 4832 rows")
    assert main(["data", "build", "--ticker", "IXIC", "--version", "3"]) == 0
    assert capsys.readouterr().out.startswith("up to date IXIC/a25/v3")
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "IXIC/a25/v3  4832  1999-10-18..2018-12-31" in out
    assert f"{source} -> data/raw/IXIC.parquet" in out


def test_fetch_without_the_extra_is_one_line(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["data", "fetch", "SPY", "--start", "2020-01-01"])
    err = capsys.readouterr().err
    if "not installed" in err:
        assert code == 2
        assert err.count("\n") == 1 and "pip install 'hpotui[fetch]'" in err
    else:  # yfinance installed but no network here: the offline line, exit 1
        assert code == 1 and err.count("\n") == 1 and "could not download SPY" in err


def test_usage_errors(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data"]) == 2
    assert "import" in capsys.readouterr().err
    assert main(["data", "build", "--tier", "nope"]) == 2
    assert "unknown feature tier 'nope'" in capsys.readouterr().err
    assert main(["data", "verify"]) == 0
    assert main(["data", "list"]) == 0
    assert "no datasets yet" in capsys.readouterr().out


def test_import_help_states_the_adj_close_policy(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "import", "--help"])
    assert "Adj Close: kept as its own column" in capsys.readouterr().out
