"""PatchTST: shapes, logits (no sigmoid), patching across all features, dropout."""

from __future__ import annotations

import pytest
import torch

from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.model.patchtst import PatchTST, keep_mask, residual_dropout

ARCH = Architecture(32, 2, 4, 64)


def test_forward_gives_one_logit_per_window() -> None:
    model = PatchTST(ARCH, n_features=7).eval()
    out = model(torch.randn(5, 60, 7))
    assert out.shape == (5,)
    assert out.dtype == torch.float32


def test_outputs_are_logits_not_probabilities() -> None:
    torch.manual_seed(0)
    model = PatchTST(ARCH, n_features=3).eval()
    with torch.no_grad():
        model.head.bias.fill_(5.0)  # a sigmoid inside would squash this into (0, 1)
        out = model(torch.randn(16, 60, 3))
    assert (out > 1.0).any()


def test_each_window_attends_only_to_itself_and_gradients_agree() -> None:
    """CPU attention runs pairs of windows in one masked sequence: a window's logit and
    its gradients must not depend on its neighbours in the batch."""
    torch.manual_seed(0)
    model = PatchTST(ARCH, n_features=3).double().eval()
    x = torch.randn(6, 60, 3, dtype=torch.float64)
    together = model(x)  # even batch: paired
    alone = torch.cat([model(x[i : i + 1]) for i in range(6)])  # batch 1: unpaired
    assert torch.allclose(together, alone, atol=1e-12)
    grads = []
    for out in (together.sum(), alone.sum()):
        model.zero_grad()
        out.backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


def test_every_time_step_and_feature_reaches_the_output() -> None:
    model = PatchTST(ARCH, n_features=4).eval()
    x = torch.randn(2, 60, 4, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None
    assert (x.grad.abs().sum(dim=0) > 0).all()  # patches cover all 60 days x 4 features


def test_configurable_patching_changes_the_patch_count() -> None:
    model = PatchTST(ARCH, n_features=2, context_len=30, patch_len=6, stride=3)
    assert model.n_patches == 9
    assert model(torch.randn(3, 30, 2)).shape == (3,)


def test_dropout_applies_in_training_only() -> None:
    torch.manual_seed(0)
    model = PatchTST(ARCH, n_features=3, dropout=0.3, head_dropout=0.3)
    x = torch.randn(4, 60, 3)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_head_dropout_changes_training_output() -> None:
    torch.manual_seed(1)
    model = PatchTST(ARCH, n_features=3, dropout=0.0, head_dropout=0.5).train()
    x = torch.randn(4, 60, 3)
    assert not torch.equal(model(x), model(x))
    no_head = PatchTST(ARCH, n_features=3, dropout=0.0, head_dropout=0.0).train()
    assert torch.equal(no_head(x), no_head(x))


def test_wrong_window_shape_is_refused() -> None:
    model = PatchTST(ARCH, n_features=3)
    with pytest.raises(ValueError, match=r"\(B, 60, 3\)"):
        model(torch.randn(2, 59, 3))


def test_heads_must_divide_d_model() -> None:
    with pytest.raises(UserError, match="n_heads 3 does not divide d_model 32"):
        PatchTST(Architecture(32, 2, 3, 64), n_features=3)


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.5])
def test_dropout_mask_drops_the_configured_fraction_and_keeps_the_mean(p: float) -> None:
    torch.manual_seed(0)
    mask = keep_mask(torch.empty(400, 1001), p)  # odd size: the last random word is cut
    dropped = (mask == 0).float()
    assert abs(dropped.mean().item() - p) < 0.003
    for lane in range(4):  # each 16-bit lane of a random word drops at the same rate
        assert abs(dropped.view(-1)[lane::4].mean().item() - p) < 0.006
    assert abs(mask.mean().item() - 1.0) < 0.01  # kept values scaled by 1 / (1 - p)
    kept = mask[mask != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)), rtol=1e-3)


def test_residual_dropout_matches_its_definition_and_repeats_with_the_seed() -> None:
    x = torch.randn(6, 11, 8, requires_grad=True)
    branch = torch.randn(6, 11, 8, requires_grad=True)
    torch.manual_seed(7)
    out = residual_dropout(x, branch, 0.3, training=True)
    torch.autograd.backward(out, torch.full_like(out, 2.0))
    torch.manual_seed(7)
    mask = keep_mask(branch, 0.3)
    assert torch.allclose(out, x + branch * mask)
    assert branch.grad is not None and torch.allclose(branch.grad, 2.0 * mask)
    assert x.grad is not None and torch.equal(x.grad, torch.full_like(x, 2.0))
    assert torch.equal(residual_dropout(x, branch, 0.3, training=False), x + branch)
