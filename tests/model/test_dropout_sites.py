"""`dropout_sites`: each site drops where it says, in the solo and the fused model, and
does nothing at rate 0 (the fused model then still equals its solo models)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.model.dropout_sites import PRESETS, SITES, describe_sites, parse_sites
from engine.model.fused import FusedPatchTST
from engine.model.patchtst import PatchTST, _math_attention, _sdpa

pytestmark = pytest.mark.filterwarnings("ignore:grad and param do not obey")
ARCH = Architecture(d_model=16, n_layers=2, n_heads=2, d_ff=32)
SHAPE = {"context_len": 20, "patch_len": 5, "stride": 5}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def model(sites: tuple[str, ...] | str, dropout: float, seed: int = 0) -> PatchTST:
    torch.manual_seed(seed)
    return PatchTST(ARCH, 7, dropout=dropout, dropout_sites=sites, **SHAPE)


def train_output(m: PatchTST | FusedPatchTST, x: torch.Tensor, seed: int = 1) -> torch.Tensor:
    m.train()
    torch.manual_seed(seed)
    return m(x)


def test_presets_and_lists_resolve_to_sites_in_model_order() -> None:
    assert parse_sites("residual") == ("embedding", "attention_out", "ffn_out")
    assert parse_sites("reference") == ("embedding", "attention", "ffn_inner", "ffn_out")
    assert parse_sites(["ffn_out", "attention"]) == ("attention", "ffn_out")
    assert parse_sites([]) == ()
    assert describe_sites(PRESETS["reference"]) == "reference"
    assert describe_sites(("attention", "ffn_out")) == "attention+ffn_out"
    for bad in ("nope", ["attention", "attention"], ["ffn"], 3):
        with pytest.raises(ValueError):
            parse_sites(bad)
    with pytest.raises(UserError, match="dropout_sites"):
        PatchTST(ARCH, 7, dropout_sites="nope", **SHAPE)


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("batch", [8, 7])  # even: the paired CPU attention; odd: plain
def test_each_site_drops_in_training_and_only_with_a_rate(site: str, batch: int) -> None:
    x = torch.randn(batch, 20, 7)
    # the same weights, with only this site, or no site at all
    only = model((site,), dropout=0.5)
    none = model((), dropout=0.5)
    none.load_state_dict(only.state_dict())
    assert torch.allclose(train_output(none, x), none.eval()(x), atol=1e-5)  # no site: no drop
    dropped = train_output(only, x)
    assert (dropped - only.eval()(x)).abs().max() > 1e-2
    assert not torch.allclose(train_output(only, x, seed=2), dropped)  # a fresh mask each step
    # rate 0: the site is a no-op, in training as in evaluation
    zero = model((site,), dropout=0.0)
    zero.load_state_dict(only.state_dict())
    assert torch.allclose(train_output(zero, x), zero.eval()(x), atol=1e-5)


def test_attention_weight_dropout_keeps_gradients_and_expected_output() -> None:
    q, k, v = (torch.randn(4, 2, 11, 8, requires_grad=True) for _ in range(3))
    plain = _math_attention(q, k, v, lambda w: w)
    assert torch.allclose(plain, _sdpa(q, k, v), atol=1e-5)  # the same attention
    torch.manual_seed(0)
    masks = []

    def drop(w: torch.Tensor) -> torch.Tensor:
        masks.append((torch.rand_like(w) >= 0.5).float() * 2)
        return w * masks[-1]

    out = _math_attention(q, k, v, drop)
    weights = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1)
    assert torch.allclose(out, (weights * masks[0]) @ v, atol=1e-5)
    out.sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0


def fused_pair(
    sites: tuple[str, ...] | str, rates: list[float]
) -> tuple[list[PatchTST], FusedPatchTST]:
    solos = [model(sites, dropout=r, seed=k) for k, r in enumerate(rates)]
    return solos, FusedPatchTST.stack(solos, rates, [0.0] * len(rates))


@pytest.mark.parametrize("sites", ["reference", "residual", SITES])
@pytest.mark.parametrize("batch", [8, 7])
def test_fused_equals_solo_models_at_rate_0_with_any_sites(
    sites: tuple[str, ...] | str, batch: int
) -> None:
    solos, fused = fused_pair(sites, [0.0, 0.0, 0.0])
    x = torch.randn(3, batch, 20, 7)
    expected = torch.stack([m.train()(x[k]) for k, m in enumerate(solos)])
    assert torch.allclose(train_output(fused, x), expected, atol=1e-5)
    # gradients too: the sites' code paths in backward
    train_output(fused, x).sum().backward()
    solo_grads = []
    for k, m in enumerate(solos):
        m.zero_grad()
        m(x[k]).sum().backward()
        solo_grads.append(dict(m.named_parameters()))
    for name, p in zip(fused.names, fused.params, strict=True):
        for k in range(3):
            assert torch.allclose(p.grad[k], solo_grads[k][name].grad, atol=1e-4), name  # type: ignore[index]


@pytest.mark.parametrize("site", SITES)
def test_fused_site_drops_each_trials_own_rate(site: str) -> None:
    _, fused = fused_pair((site,), [0.0, 0.5])
    x = torch.randn(2, 8, 20, 7)
    out = train_output(fused, x)
    fused.eval()
    clean = fused(x)
    assert torch.allclose(out[0], clean[0], atol=1e-5)  # rate 0: untouched
    assert (out[1] - clean[1]).abs().max() > 1e-2  # rate 0.5: dropped at this site
    none = FusedPatchTST.stack([model((), 0.5, seed=k) for k in range(2)], [0.5, 0.5], [0.0, 0.0])
    assert torch.allclose(train_output(none, x), none.eval()(x), atol=1e-5)


def test_fused_group_needs_one_set_of_sites() -> None:
    mixed = [model("reference", 0.1), model("residual", 0.1, seed=1)]
    with pytest.raises(ValueError, match="dropout_sites"):
        FusedPatchTST.stack(mixed, [0.1, 0.1], [0.0, 0.0])
    _, fused = fused_pair("reference", [0.1, 0.2])
    assert fused.dropout_sites == PRESETS["reference"]


def test_dropout_on_a_site_is_the_configured_fraction() -> None:
    """The ffn_inner mask (keep_mask on CPU) drops ~p of the hidden units, mean kept."""
    from engine.model.patchtst import dropout

    x = torch.ones(200_000)
    out = dropout(x, 0.3, True)
    assert (out == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert out.mean().item() == pytest.approx(1.0, abs=0.02)
    assert torch.equal(dropout(x, 0.3, False), x)
    assert torch.equal(F.dropout(x, 0.0), dropout(x, 0.0, True))
