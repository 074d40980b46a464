"""Device choice, precision, threads and seeding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from engine.errors import UserError
from engine.train import device as dev
from engine.train.device import (
    resolve_device,
    seed_everything,
    set_threads,
    split_precision,
    training_dtype,
)


def _fake(monkeypatch: pytest.MonkeyPatch, *, mps: bool, cuda: bool) -> None:
    monkeypatch.setattr(dev, "_mps_available", lambda: mps)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if cuda else 0)


@pytest.mark.parametrize(
    ("mps", "cuda", "expected"),
    [(True, True, "mps"), (False, True, "cuda"), (False, False, "cpu"), (True, False, "mps")],
)
def test_auto_prefers_mps_then_cuda_then_cpu(
    monkeypatch: pytest.MonkeyPatch, mps: bool, cuda: bool, expected: str
) -> None:
    _fake(monkeypatch, mps=mps, cuda=cuda)
    assert resolve_device("auto").type == expected


def test_explicit_cpu_always_resolves() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "mps"])
def test_unavailable_explicit_device_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    _fake(monkeypatch, mps=False, cuda=False)
    with pytest.raises(UserError, match="not available"):
        resolve_device(name)


def test_missing_cuda_index_and_unknown_names(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(monkeypatch, mps=False, cuda=True)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(UserError, match="does not exist"):
        resolve_device("cuda:3")
    for bad in ("tpu", "cuda:x", ""):
        with pytest.raises(UserError, match="unknown device"):
            resolve_device(bad)


def test_precision_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    # auto: bf16 only where AMX makes it faster
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert training_dtype(cpu, "auto") is None
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert training_dtype(cpu, "auto") is torch.bfloat16
    assert training_dtype(cpu, "fp32") is None
    assert training_dtype(cpu, "bf16") is torch.bfloat16
    with pytest.raises(UserError, match="precision"):
        training_dtype(cpu, "fp8")


def test_bf16_is_a_bf16_model_on_cpu_and_autocast_elsewhere() -> None:
    bf16 = torch.bfloat16
    assert split_precision(torch.device("cpu"), bf16) == (bf16, None)
    assert split_precision(torch.device("cuda"), bf16) == (None, bf16)
    assert split_precision(torch.device("mps"), bf16) == (None, bf16)
    for device in ("cpu", "cuda"):
        assert split_precision(torch.device(device), None) == (None, None)
        assert split_precision(torch.device(device), torch.float32) == (None, None)


def test_precision_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert training_dtype(cuda, "auto") is torch.bfloat16
    assert training_dtype(cuda, "fp32") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert training_dtype(cuda, "auto") is None
    with pytest.raises(UserError, match="bf16"):
        training_dtype(cuda, "bf16")


def test_set_threads() -> None:
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        set_threads(None)
        assert torch.get_num_threads() == 1
        with pytest.raises(UserError, match="threads"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_seed_everything_repeats_every_generator() -> None:
    def draw() -> tuple[float, float, list[float]]:
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    seed_everything(7)
    first = draw()
    seed_everything(7)
    assert draw() == first
    seed_everything(8)
    assert draw() != first
