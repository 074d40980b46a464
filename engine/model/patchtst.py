"""PatchTST classifier: patches across all features -> pre-norm transformer -> one logit.

The design of the reference study (original-pipeline.md, "Model and search"): each window
of `context_len` days is cut into overlapping patches of `patch_len` days every `stride`
days; a patch is flattened across all features and projected to `d_model`; a learned
positional embedding is added; pre-norm encoder layers (attention + GELU feed-forward)
follow; a final LayerNorm, then the patches are flattened into one linear head.

The model returns logits. There is no sigmoid here: the loss is BCE with logits and
probabilities are taken only at evaluation (the reference applied a sigmoid twice).

This module imports nothing from training. `engine.model.params.count_params` is the
exact closed formula of `sum(p.numel() for p in PatchTST(...).parameters())`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.model.params import n_patches


class EncoderLayer(nn.Module):
    """Pre-norm layer: x + Drop(Attn(LN(x))), then x + Drop(FFN(LN(x))).

    Attention uses one fused qkv projection and PyTorch's fused scaled-dot-product
    attention. Dropout sits on the two residual branches (as in nanoGPT), not on the
    attention weights: with ~11 patches the attention matrix is tiny, and fewer random
    masks keep the CPU hot path cheap.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape  # (B, N, D)
        h = self.n_heads
        qkv = _linear(self.qkv, self.norm1(x))  # (B, N, 3D)
        q, k, v = qkv.view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)  # 3 x (B, H, N, Dh)
        att = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, Dh)
        att = att.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        x = x + F.dropout(_linear(self.proj, att), self.dropout, self.training)
        ff = _linear(self.ff2, F.gelu(_linear(self.ff1, self.norm2(x))))  # (B, N, D)
        return x + F.dropout(ff, self.dropout, self.training)


def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)` as a matmul then a bias add.

    nn.Linear on CPU runs addmm, which first broadcasts the bias into the output with a
    slow strided copy; for the small, many matmuls of deep narrow models that copy costs
    a quarter of the layer's time. A plain matmul plus a vectorised add is cheaper and
    gives the same values and gradients.
    """
    return F.linear(x, layer.weight) + layer.bias


class PatchTST(nn.Module):
    """Binary classifier over a (B, context_len, n_features) window; returns (B,) logits."""

    def __init__(
        self,
        arch: Architecture,
        n_features: int,
        context_len: int = 60,
        patch_len: int = 10,
        stride: int = 5,
        dropout: float = 0.1,
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        validate_architecture(arch)
        if n_features < 1:
            raise UserError(f"n_features must be >= 1, got {n_features}", where="model")
        self.arch = arch
        self.n_features = n_features
        self.context_len = context_len
        self.patch_len = patch_len
        self.stride = stride
        self.n_patches = n_patches(context_len, patch_len, stride)
        d = arch.d_model
        self.embed = nn.Linear(patch_len * n_features, d)
        self.pos = nn.Parameter(torch.zeros(1, self.n_patches, d))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.dropout = dropout
        self.head_dropout = head_dropout
        self.layers = nn.ModuleList(
            EncoderLayer(d, arch.n_heads, arch.d_ff, dropout) for _ in range(arch.n_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(self.n_patches * d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, f = x.shape  # (B, T, F)
        if t != self.context_len or f != self.n_features:
            raise ValueError(
                f"PatchTST expects (B, {self.context_len}, {self.n_features}), got {tuple(x.shape)}"
            )
        patches = x.unfold(1, self.patch_len, self.stride)  # (B, N, F, P)
        patches = patches.reshape(b, self.n_patches, f * self.patch_len)  # (B, N, F*P)
        z = self.embed(patches) + self.pos  # (B, N, D)
        z = F.dropout(z, self.dropout, self.training)
        for layer in self.layers:
            z = layer(z)  # (B, N, D)
        z = self.norm(z).flatten(1)  # (B, N*D)
        z = F.dropout(z, self.head_dropout, self.training)
        logits: torch.Tensor = self.head(z).squeeze(-1)  # (B,)
        return logits


def validate_architecture(arch: Architecture) -> None:
    """Raise UserError naming the field when an architecture cannot be built."""
    for name in ("d_model", "n_layers", "n_heads", "d_ff"):
        if getattr(arch, name) < 1:
            raise UserError(f"{name} must be >= 1, got {getattr(arch, name)}", where=arch.label)
    if arch.d_model % arch.n_heads:
        raise UserError(
            f"n_heads {arch.n_heads} does not divide d_model {arch.d_model}",
            where=arch.label,
            hint="pick n_heads among the divisors of d_model",
        )
