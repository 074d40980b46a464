"""Warmup then cosine, read back from the optimizer it is attached to."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from engine.train.schedule import lr_factor, warmup_cosine


def rates(warmup: int, total: int, base: float = 1e-3) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([param], lr=base)
    scheduler = warmup_cosine(optimizer, warmup, total)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_linear_warmup_then_cosine_to_zero() -> None:
    seen = rates(warmup=4, total=20)
    assert seen[:4] == pytest.approx([0.25e-3, 0.5e-3, 0.75e-3, 1e-3])
    assert seen[4] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(seen[4:]))  # decays
    assert seen[-1] == pytest.approx(0.0, abs=1e-12)
    middle = 4 + (20 - 4 - 1) / 2
    assert lr_factor(int(middle), 4, 20) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * int(middle - 4) / 15))
    )


def test_warmup_steps_change_the_rates() -> None:
    assert rates(0, 20)[0] == pytest.approx(1e-3)
    assert rates(10, 20)[0] == pytest.approx(1e-4)
    assert rates(0, 20) != rates(10, 20)


def test_warmup_longer_than_the_run_only_warms_up() -> None:
    seen = rates(warmup=100, total=10)
    assert seen == pytest.approx([(i + 1) / 100 * 1e-3 for i in range(10)])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        rates(-1, 10)
