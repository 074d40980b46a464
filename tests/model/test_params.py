"""The closed parameter formula equals sum(p.numel()) over every architecture of every
reference budget's grid.

Models are built on the meta device (no memory) with initialisation skipped (values do not
change counts). n_heads enters no parameter shape (checked below), so architectures that
differ only in n_heads share one built model: every architecture's formula is compared
with the numel of a real PatchTST of its d_model, n_layers and d_ff.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.model.grid import architecture_grid
from engine.model.params import count_params, n_patches
from engine.model.patchtst import PatchTST


def _numel(arch: Architecture, n_features: int, **shape: int) -> int:
    with torch.device("meta"):
        model = PatchTST(arch, n_features, **shape)
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def no_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nn.Linear, "reset_parameters", lambda self: None)
    monkeypatch.setattr(nn.LayerNorm, "reset_parameters", lambda self: None)


@pytest.mark.parametrize("budget", ["2M", "20M", "200M", "2B"])
@pytest.mark.usefixtures("no_init")
def test_formula_equals_numel_over_the_whole_grid(budget: str) -> None:
    grid = architecture_grid(budget, 25)
    assert grid
    built: dict[tuple[int, int, int], int] = {}
    for entry in grid:
        a = entry.arch
        key = (a.d_model, a.n_layers, a.d_ff)
        if key not in built:
            built[key] = _numel(a, 25)
        assert entry.n_params == built[key], a.label
        assert entry.n_params == count_params(a, 25)


def test_heads_enter_no_parameter_shape() -> None:
    shapes = {
        heads: [tuple(p.shape) for p in PatchTST(Architecture(64, 2, heads, 128), 5).parameters()]
        for heads in (1, 2, 4, 8, 16, 32, 64)
    }
    assert len({tuple(s) for s in shapes.values()}) == 1


@pytest.mark.parametrize(
    ("n_features", "shape"),
    [(1, {}), (7, {"context_len": 30, "patch_len": 6, "stride": 3}), (25, {"stride": 10})],
)
def test_formula_follows_features_and_patching(n_features: int, shape: dict[str, int]) -> None:
    arch = Architecture(48, 3, 4, 96)
    assert count_params(arch, n_features, **shape) == _numel(arch, n_features, **shape)


def test_heads_do_not_change_the_count() -> None:
    assert count_params(Architecture(64, 4, 2, 256), 25) == count_params(
        Architecture(64, 4, 32, 256), 25
    )


def test_patch_count() -> None:
    assert n_patches(60, 10, 5) == 11
    assert n_patches(60, 60, 1) == 1
    with pytest.raises(UserError, match="patch_len"):
        n_patches(5, 10, 5)
