"""Architecture grid: the reference sizes, ordering, errors and the extremes."""

from __future__ import annotations

import pytest

from engine.errors import UserError
from engine.model.architecture import GridSpec
from engine.model.grid import architecture_grid, extremes, parse_budget


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100K", 100_000),
        ("2M", 2_000_000),
        ("1.5B", 1_500_000_000),
        ("2b", 2 * 10**9),
        ("500", 500),
    ],
)
def test_parse_budget(text: str, value: int) -> None:
    assert parse_budget(text) == value


@pytest.mark.parametrize("text", ["", "2Q", "M", "-2M", "two million", "0"])
def test_bad_budget_names_the_text(text: str) -> None:
    with pytest.raises(UserError, match="budget"):
        parse_budget(text)


@pytest.mark.parametrize(("budget", "size"), [("2M", 80), ("20M", 75), ("200M", 125), ("2B", 75)])
def test_reference_grid_sizes(budget: str, size: int) -> None:
    grid = architecture_grid(budget, 25)
    assert len(grid) == size
    target = parse_budget(budget)
    for entry in grid:
        assert 0.75 * target <= entry.n_params <= 1.25 * target
        assert entry.arch.d_model % entry.arch.n_heads == 0
        assert entry.arch.d_ff in (2 * entry.arch.d_model, 4 * entry.arch.d_model)
    sizes = [e.n_params for e in grid]
    assert sizes == sorted(sizes)
    assert len({e.arch for e in grid}) == size


def test_reference_2m_architectures_are_in_the_grid() -> None:
    labels = {e.arch.label for e in architecture_grid("2M", 25)}
    assert {"d64-L48-h2-ff256", "d64-L32-h8-ff256", "d384-L2-h8-ff768"} <= labels


def test_spec_is_configurable() -> None:
    narrow = GridSpec(tolerance=0.1)
    assert len(architecture_grid("2M", 25, narrow)) < 80
    only = GridSpec(d_model=(64,), n_layers=(48,), n_heads=(2,), ff_ratio=(4,))
    assert [e.arch.label for e in architecture_grid("2M", 25, only)] == ["d64-L48-h2-ff256"]


def test_features_change_the_grid() -> None:
    assert {e.n_params for e in architecture_grid("2M", 5)} != {
        e.n_params for e in architecture_grid("2M", 25)
    }


def test_empty_grid_names_budget_and_nearest_counts() -> None:
    with pytest.raises(UserError) as info:
        architecture_grid("1K", 25)
    text = str(info.value)
    assert "1K" in text
    assert "nearest achievable: above 84.5K" in text


def test_empty_grid_between_counts_names_both_sides() -> None:
    spec = GridSpec(d_model=(64,), n_layers=(2, 64), n_heads=(2,), ff_ratio=(4,), tolerance=0.1)
    with pytest.raises(UserError, match=r"below .*, above "):
        architecture_grid("1M", 25, spec)


def test_extremes_cover_each_edge_that_exists() -> None:
    grid = architecture_grid("2M", 25)
    chosen = extremes(grid, "2M")
    assert len(chosen) == len(set(chosen)) <= 6
    for field in ("d_model", "n_layers", "n_heads"):
        values = [getattr(e.arch, field) for e in grid]
        picked = {getattr(e.arch, field) for e in chosen}
        assert min(values) in picked
        assert max(values) in picked
    assert all(e in grid for e in chosen)


def test_extremes_are_fewer_than_six_when_edges_coincide() -> None:
    spec = GridSpec(
        d_model=(64, 128), n_layers=(2, 48), n_heads=(2,), ff_ratio=(4,), tolerance=0.99
    )
    grid = architecture_grid("1M", 25, spec)
    chosen = extremes(grid, "1M")
    # one value of n_heads: its min and max edge are the same architecture as others
    assert 2 <= len(chosen) < 6
    assert extremes(grid, "1M") == chosen  # deterministic


def test_extremes_tie_break_is_closest_to_budget() -> None:
    grid = architecture_grid("2M", 25)
    chosen = extremes(grid, "2M")
    on_min_layers = [e for e in grid if e.arch.n_layers == 2]
    best = min(on_min_layers, key=lambda e: abs(e.n_params - 2_000_000))
    assert best in chosen
    assert extremes([]) == []
