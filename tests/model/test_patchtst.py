"""PatchTST: shapes, logits (no sigmoid), patching across all features, dropout."""

from __future__ import annotations

import pytest
import torch

from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.model.patchtst import PatchTST

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
