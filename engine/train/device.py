"""Which device a trial trains on, in which precision, with how many threads and seed."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from engine.errors import UserError

DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks MPS, then CUDA, then CPU; an explicit device must exist.

    Accepts `cpu`, `cuda`, `cuda:N`, `mps`. An unknown or unavailable device is a
    UserError naming it, never a silent fall-back to CPU.
    """
    text = name.strip().lower()
    if text == "auto":
        if _mps_available():
            return torch.device("mps")
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    kind, _, index = text.partition(":")
    if kind not in DEVICE_NAMES[1:] or (index and not index.isdigit()):
        raise UserError(
            f"unknown device {name!r}", where="device", hint="use auto, cpu, cuda, cuda:N or mps"
        )
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device 'cuda' is not available on this machine", where="device")
        if index and int(index) >= torch.cuda.device_count():
            raise UserError(
                f"device {name!r} does not exist ({torch.cuda.device_count()} CUDA device(s))",
                where="device",
            )
    if kind == "mps" and not _mps_available():
        raise UserError("device 'mps' is not available on this machine", where="device")
    return torch.device(text)


def training_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The dtype a trial computes in for (device, precision), or None for plain fp32.

    `auto`: bf16 on CUDA when the GPU supports it (Ampere and later: tensor cores make it
    several times faster); on CPUs with AMX tiles (Xeon Sapphire Rapids and later), where
    bf16 matmuls run 3-5x faster than fp32 (see docs/model.md for steps and losses); fp32
    on other CPUs (no bf16 matrix unit: slower) and on MPS (bf16 autocast is slower than
    fp32 on most Apple GPUs).
    `bf16`: bf16 wherever the device can run it, else a UserError. `fp32`: None.
    How bf16 is applied depends on the device: `split_precision`.
    """
    if precision == "fp32":
        return None
    if precision not in ("auto", "bf16"):
        raise UserError(
            f"unknown precision {precision!r}", where="precision", hint="auto, fp32 or bf16"
        )
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if precision == "bf16":
            raise UserError("this CUDA device does not support bf16", where="precision")
        return None
    if precision == "auto":
        return torch.bfloat16 if device.type == "cpu" and cpu_has_amx() else None
    return torch.bfloat16  # explicit bf16 on CPU or MPS


def split_precision(
    device: torch.device, dtype: torch.dtype | None
) -> tuple[torch.dtype | None, torch.dtype | None]:
    """How training in `dtype` (`training_dtype`'s answer) runs on `device`:
    (the dtype the model itself is cast to, the autocast dtype); None: neither.

    On CPUs the model itself is bf16: its parameters are views into one flat bf16
    buffer, and the optimizer keeps fp32 master weights, gradients and moments
    (`engine.train.step.FlatAdamW`). Autocast there cast every weight and every
    activation around ~870 small ops per step and ate what AMX saved on the matmuls;
    a bf16 model steps 1.25x (deep d64) to 1.9x (wide d384) faster than fp32, autocast
    1.1-1.7x. On GPUs the model stays fp32 under bf16 autocast (measured and captured
    in CUDA graphs that way on an H200).
    """
    if dtype is None or dtype == torch.float32:
        return None, None
    if device.type == "cpu":
        return dtype, None
    return None, dtype


def cpu_has_amx() -> bool:
    """Does this CPU have AMX tiles (bf16 matrix units) that PyTorch can use?"""
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except Exception:  # a PyTorch without the probe: assume not
        return False


def set_threads(n: int | None) -> None:
    """Intra-op threads for this process (None: leave torch's default, all cores).

    Parallel workers on one machine split the cores by passing their share here.
    """
    if n is None:
        return
    if n < 1:
        raise UserError(f"threads must be >= 1, got {n}", where="threads")
    torch.set_num_threads(n)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a trial is repeatable."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
