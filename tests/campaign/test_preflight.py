"""Pre-flight over a whole campaign, against the real dataset, grid and storage code."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from engine.campaign.config import load_campaign
from engine.dataset.manifest import load_processed
from engine.dataset.windows import prepare_data
from engine.errors import UserErrors
from engine.model.grid import architecture_grid, extremes
from engine.process.preflight import run_preflight
from engine.train.memory import SAFETY, estimate_peak_bytes
from tests.campaign.conftest import ROOT, write_config


def tiny(home: Path) -> Path:
    target = home / "tiny.toml"
    shutil.copy(ROOT / "configs" / "tiny.toml", target)
    return target


def outside_data(home: Path) -> set[Path]:
    return {p for p in home.rglob("*") if p.relative_to(home).parts[0] != "data"}


def test_tiny_campaign_passes_and_reports_grids_splits_and_memory(data_workspace: Path) -> None:
    campaign = load_campaign(tiny(data_workspace))
    before = outside_data(data_workspace)

    report = run_preflight(campaign)

    assert report.ok, report.problems
    report.raise_if_problems()
    assert report.excluded == [] and report.excluded_architectures == {}
    frame, _ = load_processed("SP500", "a25", 1)
    text = "\n".join(report.lines)
    for exp in campaign.experiments:
        grid = architecture_grid(exp.budget, 25, exp.grid)
        assert f"{exp.name}: budget {exp.budget}: {len(grid)} architectures" in text, text
        assert f"{len(extremes(grid, exp.budget))} extremes" in text
        sizes = {i.name: i.size for i in prepare_data(frame, exp.data, torch.device("cpu")).report}
        assert f"windows train {sizes['train']} / val {sizes['val']} / test {sizes['test']}" in text
        assert f"{exp.name}: largest " in text
    assert "sha256" in text and "verified" in text
    # nothing started or written: no outputs folder, no journal
    assert outside_data(data_workspace) == before
    assert not (data_workspace / "outputs" / "tiny").exists()


def test_split_sizes_differ_per_horizon(data_workspace: Path) -> None:
    text = (
        (ROOT / "configs" / "tiny.toml").read_text().replace("horizons = [1]", "horizons = [1, 5]")
    )
    report = run_preflight(load_campaign(write_config(data_workspace, text)))
    assert report.ok, report.problems
    split_lines = [line for line in report.lines if "windows train" in line]
    assert any(": h1 " in line for line in split_lines)
    assert any(": h5 " in line for line in split_lines)
    h1 = next(line for line in split_lines if ": h1 " in line)
    h5 = next(line for line in split_lines if ": h5 " in line)
    assert h1.split("label rate")[1] != h5.split("label rate")[1]  # labels follow the horizon


def test_architectures_that_cannot_fit_are_excluded_with_a_warning(data_workspace: Path) -> None:
    campaign = load_campaign(tiny(data_workspace))
    exp = campaign.experiments[0]
    grid = architecture_grid(exp.budget, 25, exp.grid)
    peaks = sorted({estimate_peak_bytes(e.arch, 25, 1) for e in grid})
    assert len(peaks) > 1
    limit = int((peaks[0] + peaks[-1]) / 2 / SAFETY)  # the smallest fit at batch 1, the largest not

    report = run_preflight(campaign, memory_limit_bytes=limit)

    expected = tuple(e.arch for e in grid if estimate_peak_bytes(e.arch, 25, 1) > limit * SAFETY)
    assert expected and report.excluded_architectures[exp.name] == expected
    assert any(
        f"{exp.name}: {len(expected)} of {len(grid)} architectures excluded" in w
        for w in report.warnings
    )
    assert exp.name not in report.excluded


def test_an_experiment_with_no_architecture_that_fits_is_excluded(data_workspace: Path) -> None:
    campaign = load_campaign(tiny(data_workspace))
    report = run_preflight(campaign, memory_limit_bytes=1024)
    assert report.excluded == [e.name for e in campaign.experiments]
    assert any("excluded: no architecture of budget" in w for w in report.warnings)
    # when nothing at all can run, the campaign cannot start
    assert not report.ok
    with pytest.raises(UserErrors, match="no experiment fits"):
        report.raise_if_problems()


def test_every_problem_is_listed_once_with_its_location(data_workspace: Path) -> None:
    (data_workspace / "blocker").write_text("")
    text = (
        (ROOT / "configs" / "tiny.toml")
        .read_text()
        .replace('dataset = "SP500"', 'dataset = "NOPE"')
        .replace("workers = 1", 'workers = 1\nstorage = "journal:blocker/j.journal"')
    )
    path = write_config(data_workspace, text)
    report = run_preflight(load_campaign(path))
    lines = [str(p) for p in report.problems]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{path.name}:8: campaign.storage: storage ")
    assert lines[1].startswith(
        f"{path.name}:11: defaults.dataset: dataset NOPE/a25/v1: is not built"
    )
    assert lines[1].endswith("[all 2 experiments]")


def test_storage_override_is_checked_instead_of_the_default(data_workspace: Path) -> None:
    report = run_preflight(load_campaign(tiny(data_workspace)), "redis://host/0")
    (problem,) = report.problems
    assert str(problem).startswith("--storage: storage redis://host/0: unknown scheme")
    assert report.storage_url == "redis://host/0"


def test_not_enough_free_disk_is_a_problem(data_workspace: Path) -> None:
    report = run_preflight(load_campaign(tiny(data_workspace)), min_free_bytes=2**60)
    (problem,) = report.problems
    assert str(problem).startswith("outputs: only ") and "free on the disk" in str(problem)


@pytest.mark.skipif(os.access("/proc/sys", os.W_OK), reason="needs a folder this user cannot write")
def test_unwritable_outputs_folder_is_a_problem(data_workspace: Path) -> None:
    shutil.rmtree(data_workspace / "outputs")
    (data_workspace / "outputs").symlink_to("/proc/sys")
    campaign = load_campaign(tiny(data_workspace))
    report = run_preflight(campaign, f"sqlite:///{data_workspace / 'o.db'}")
    (problem,) = report.problems
    assert str(problem).startswith("outputs: ") and "is not writable" in str(problem)
