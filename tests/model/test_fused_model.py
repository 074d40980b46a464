"""The fused model: K solo models' outputs, gradients only in each trial's own row,
re-packing, per-trial dropout, and a memory estimate that covers K."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine.model.architecture import Architecture
from engine.model.dropout_sites import PRESETS
from engine.model.fused import FusedPatchTST, fused_keep_mask
from engine.model.patchtst import PatchTST
from engine.train.memory import estimate_peak_bytes, max_fused_trials

# direct backward passes through the strided stacked parameters: autograd's layout hint
pytestmark = pytest.mark.filterwarnings("ignore:grad and param do not obey")
ARCH = Architecture(d_model=16, n_layers=2, n_heads=2, d_ff=32)
MEASURE = Path(__file__).with_name("_measure_peak.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def solo_models(k: int, dropout: float = 0.0) -> list[PatchTST]:
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(PatchTST(ARCH, 7, context_len=20, patch_len=5, stride=5, dropout=dropout))
    return models


def fused_of(models: list[PatchTST]) -> FusedPatchTST:
    return FusedPatchTST.stack(models, [m.dropout for m in models], [0.0] * len(models))


@pytest.mark.parametrize("batch", [8, 7])  # even: paired attention on CPU; odd: plain
def test_forward_equals_each_solo_model(batch: int) -> None:
    models = solo_models(3)
    fused = fused_of(models)
    x = torch.randn(3, batch, 20, 7)
    expected = torch.stack([m(x[k]) for k, m in enumerate(models)])  # (K, B)
    assert torch.allclose(fused(x), expected, atol=1e-5)
    shared = torch.randn(batch, 20, 7)  # evaluation: one batch for every trial
    expected = torch.stack([m(shared) for m in models])
    assert torch.allclose(fused(shared), expected, atol=1e-5)


def test_each_trial_gradient_reaches_only_its_own_row() -> None:
    models = solo_models(3)
    fused = fused_of(models)
    x = torch.randn(3, 8, 20, 7)
    fused(x)[1].sum().backward()  # a loss of trial 1 only
    assert fused.grads[1].abs().sum() > 0
    assert fused.grads[0].abs().sum() == 0 and fused.grads[2].abs().sum() == 0
    # and trial 1's gradient is the solo model's
    models[1](x[1]).sum().backward()
    solo = dict(models[1].named_parameters())
    for name, p in zip(fused.names, fused.params, strict=True):
        assert p.grad is not None and solo[name].grad is not None
        assert torch.allclose(p.grad[1], solo[name].grad, atol=1e-5), name


def test_member_state_dict_is_a_solo_models_and_repack_keeps_members() -> None:
    models = solo_models(4)
    fused = fused_of(models)
    x = torch.randn(8, 20, 7)
    for k, model in enumerate(models):
        copy = solo_models(1)[0]
        copy.load_state_dict(fused.member_state_dict(k))
        assert torch.equal(copy(x), model(x))
    fused.repack([3, 1])
    assert fused.k == 2
    expected = torch.stack([models[3](x), models[1](x)])
    assert torch.allclose(fused(x), expected, atol=1e-5)
    assert all(p.shape[0] == 2 for p in fused.params)


def test_decayed_parameters_come_first_in_a_row() -> None:
    fused = fused_of(solo_models(2))
    for p, off in zip(fused.params, fused.offsets, strict=True):
        assert (off < fused.decay_columns) == (p.dim() >= 3)  # (K, ...) of a matrix


def test_stack_refuses_two_architectures() -> None:
    other = PatchTST(Architecture(16, 1, 2, 32), 7, context_len=20, patch_len=5, stride=5)
    with pytest.raises(ValueError, match="one architecture"):
        FusedPatchTST.stack([solo_models(1)[0], other], [0.0, 0.0], [0.0, 0.0])


def test_keep_mask_drops_each_trials_own_rate() -> None:
    torch.manual_seed(0)
    like = torch.ones(3, 200_000)
    rates = torch.tensor([0.0, 0.1, 0.5])
    mask = fused_keep_mask(like, rates)
    for k, p in enumerate(rates.tolist()):
        dropped = float((mask[k] == 0).float().mean())
        assert abs(dropped - p) < 0.005
        assert abs(float(mask[k].mean()) - 1.0) < 0.01  # scaled by 1 / (1 - p)


def test_dropout_is_per_trial_and_only_in_training() -> None:
    models = solo_models(2)
    fused = FusedPatchTST.stack(models, [0.0, 0.5], [0.0, 0.0])
    x = torch.randn(8, 20, 7)
    fused.train()
    out = fused(x)
    assert torch.allclose(out[0], models[0](x), atol=1e-5)  # rate 0: no mask
    assert not torch.allclose(out[1], models[1](x), atol=1e-3)
    fused.eval()
    assert torch.allclose(fused(x)[1], models[1](x), atol=1e-5)


def test_estimate_grows_with_k_and_max_fused_trials_fits_the_budget() -> None:
    arch = Architecture(64, 4, 2, 128)
    one = estimate_peak_bytes(arch, 25, 256)
    four = estimate_peak_bytes(arch, 25, 256, fused=4)
    assert 3.5 * one < four < 4.5 * one
    cpu = torch.device("cpu")
    k = max_fused_trials(arch, 25, 256, cpu, cap=16, available=int(four / 0.8) + 1)
    assert k == 4
    assert max_fused_trials(arch, 25, 256, cpu, cap=2, available=10**12) == 2
    assert max_fused_trials(arch, 25, 256, cpu, cap=8, available=one // 2) == 0
    # the reference's dropout sites keep a d_ff-wide mask per layer: fewer trials fit
    reference = max_fused_trials(
        arch,
        25,
        256,
        cpu,
        cap=16,
        available=int(four / 0.8) + 1,
        dropout_sites=PRESETS["reference"],
    )
    assert reference < 4


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fused_estimate_within_30_percent_of_measured_rss_peak(precision: str) -> None:
    cases = [(Architecture(256, 2, 4, 1024), 64), (Architecture(32, 4, 2, 64), 512)]
    suffix = ",bf16" if precision == "bf16" else ""
    groups = [
        ",".join(str(v) for v in (*a.to_dict().values(), 25, b)) + suffix + ",k4" for a, b in cases
    ]
    out = subprocess.run(
        [sys.executable, str(MEASURE), *groups],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=400,
    )
    measured = [int(line) for line in out.stdout.split()]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    for (arch, batch), peak in zip(cases, measured, strict=True):
        estimate = estimate_peak_bytes(arch, 25, batch, dtype=dtype, fused=4)
        assert 0.7 * peak <= estimate <= 1.3 * peak, (arch.label, estimate, peak)
