"""`fuse = "auto"`: K from the memory estimate and a timing against the one-trial path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.model.architecture import Architecture
from engine.train import fuse_size

ARCH = Architecture(16, 1, 2, 32)
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No answer from an earlier test: an empty cache directory and process memory."""
    from engine.train import run_choice_cache

    monkeypatch.setenv(run_choice_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(run_choice_cache, "memory", {})
    fuse_size._CHOSEN.clear()


def _timed(monkeypatch: pytest.MonkeyPatch, solo: float, fused: dict[int, float]) -> list[int]:
    """Replace the step timings by fixed figures; the Ks the calibration timed."""
    asked: list[int] = []
    monkeypatch.setattr(fuse_size, "time_solo_step", lambda *a, **kw: solo)

    def fused_step(*args: object, **kw: object) -> float:
        k = int(args[5])  # type: ignore[call-overload]
        asked.append(k)
        return fused[k]

    monkeypatch.setattr(fuse_size, "time_fused_step", fused_step)
    return asked


@pytest.mark.parametrize(
    ("fused", "k"),
    [
        ({2: 0.19, 4: 0.30}, 1),  # 0.095 s per trial-step: under the 10% a group must gain
        ({2: 0.16, 4: 0.30, 8: 0.50}, 2),  # K=4 gains 6% per trial-step over K=2: stop
        ({2: 0.12, 4: 0.16, 8: 0.24}, 8),  # every doubling pays
        ({2: 0.24, 4: 0.10}, 1),  # a slower K=2 ends the search: K=4 is never tried
    ],
)
def test_auto_keeps_the_one_trial_path_unless_a_group_beats_it(
    monkeypatch: pytest.MonkeyPatch, fused: dict[int, float], k: int
) -> None:
    asked = _timed(monkeypatch, 0.1, fused)
    choice = fuse_size.choose_fuse(ARCH, 25, 64, CPU, None, available=1 << 34)
    assert choice.k == k
    assert choice.step_s[1] == 0.1  # the one-trial path is the baseline, stored
    assert asked == sorted(asked) and asked[0] == 2
    if k == 1 and 0.24 in fused.values():
        assert asked == [2]


def test_memory_bound_caps_k_and_one_fitting_trial_skips_the_timing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _timed(monkeypatch, 0.1, {2: 0.12, 4: 0.16, 8: 0.24})
    monkeypatch.setattr(fuse_size, "max_fused_trials", lambda *a, **kw: 4)
    assert fuse_size.choose_fuse(ARCH, 25, 64, CPU, None).k == 4
    assert asked == [2, 4]
    monkeypatch.setattr(fuse_size, "max_fused_trials", lambda *a, **kw: 1)
    choice = fuse_size.choose_fuse(ARCH, 25, 64, CPU, None)
    assert choice.k == 1 and asked == [2, 4]  # the timed answer, cut to memory
    fuse_size._CHOSEN.clear()
    choice = fuse_size.choose_fuse(ARCH, 32, 64, CPU, None)  # another shape: not timed
    assert (choice.k, choice.step_s) == (1, {}) and asked == [2, 4]


def test_a_real_calibration_times_the_solo_path_and_groups() -> None:
    choice = fuse_size.choose_fuse(ARCH, 5, 32, CPU, None, cap=2, available=1 << 34)
    assert set(choice.step_s) == {1, 2}
    assert all(s > 0 for s in choice.step_s.values())
    assert choice.k in (1, 2)
    # cached for the process: the same class is not timed again
    assert fuse_size.choose_fuse(ARCH, 5, 32, CPU, None, cap=2, available=1 << 34) is choice


@pytest.mark.parametrize(("device", "cap"), [("cpu", 8), ("mps", 8), ("cuda", 16)])
def test_each_device_gets_its_cap_and_an_accelerator_may_fill_it(
    monkeypatch: pytest.MonkeyPatch, device: str, cap: int
) -> None:
    """The selection logic as a Mac or a GPU box would run it (no such device here: the
    memory estimate and the step timings are given)."""
    bounds: list[int] = []

    def memory_bound(*args: object, cap: int, **kw: object) -> int:
        bounds.append(cap)
        return cap

    monkeypatch.setattr(fuse_size, "max_fused_trials", memory_bound)
    monkeypatch.setattr(fuse_size, "device_name", lambda d: f"{d.type} (no such device here)")
    # launch-bound steps: a group of K costs barely more than one trial
    asked = _timed(monkeypatch, 0.010, {k: 0.010 + 0.001 * k for k in (2, 4, 8, 16)})
    choice = fuse_size.choose_fuse(ARCH, 25, 256, torch.device(device), None)
    assert bounds == [cap] and choice.k == cap and asked[-1] == cap


def test_a_compute_bound_step_is_not_timed_past_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuse_size, "max_fused_trials", lambda *a, **kw: 8)
    asked = _timed(monkeypatch, 1.2, {2: 1.5, 4: 2.0, 8: 3.0})  # 5 steps x K=2 x 1.2 s > 8 s
    choice = fuse_size.choose_fuse(ARCH, 25, 256, CPU, None)
    assert (choice.k, asked) == (1, [])


def test_the_answer_is_cached_for_the_machine_and_bounded_by_memory_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second worker (another process: the process memory is empty) reads the K the
    first one timed from the cache file instead of timing again; a cached K above what
    memory allows now is cut to it."""
    from engine.train import run_choice_cache

    asked = _timed(monkeypatch, 0.1, {2: 0.12, 4: 0.16, 8: 0.24})
    monkeypatch.setattr(fuse_size, "max_fused_trials", lambda *a, **kw: 8)
    first = fuse_size.choose_fuse(ARCH, 25, 64, CPU, None)
    assert (first.k, first.source) == (8, "measured") and asked == [2, 4, 8]
    (key,) = run_choice_cache.cached_fuse_choices()
    assert "d16" in key and "batch 64" in key and run_choice_cache.machine() in key
    assert run_choice_cache.cached_choices() == {}  # not mistaken for a run choice
    monkeypatch.setattr(run_choice_cache, "memory", {})
    fuse_size._CHOSEN.clear()
    monkeypatch.setattr(fuse_size, "max_fused_trials", lambda *a, **kw: 4)
    again = fuse_size.choose_fuse(ARCH, 25, 64, CPU, None)
    assert asked == [2, 4, 8]  # not timed again
    assert (again.k, again.source, again.step_s) == (4, "cached", first.step_s)
    # `hpotui hw` lists it, as the run choices
    from hpotui.commands.hw import fuse_choice_rows

    ((name, text),) = fuse_choice_rows(run_choice_cache.machine() + " | ")
    assert name.startswith("  fuse · cpu · d16") and text.startswith("K=8 (memory allows 8")


def test_dropout_sites_reach_the_memory_bound_and_the_timing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reference's three dropout sites keep more masks and take longer per step than
    the default: a campaign that uses them has its own calibration and memory bound."""
    from engine.model.dropout_sites import DEFAULT, PRESETS

    seen: list[tuple[str, ...]] = []
    monkeypatch.setattr(fuse_size, "time_solo_step", lambda *a, sites, **kw: 0.1)

    def fused_step(*args: object, sites: tuple[str, ...], **kw: object) -> float:
        seen.append(sites)
        return 0.12

    monkeypatch.setattr(fuse_size, "time_fused_step", fused_step)
    bounds: list[tuple[str, ...]] = []

    def memory_bound(*args: object, dropout_sites: tuple[str, ...], **kw: object) -> int:
        bounds.append(dropout_sites)
        return 2

    monkeypatch.setattr(fuse_size, "max_fused_trials", memory_bound)
    default = fuse_size.choose_fuse(ARCH, 25, 64, CPU, None)
    reference = fuse_size.choose_fuse(ARCH, 25, 64, CPU, None, dropout_sites=PRESETS["reference"])
    assert bounds == [DEFAULT, PRESETS["reference"]]
    assert seen == [DEFAULT, PRESETS["reference"]]  # timed again: not the default's answer
    assert default is not reference
