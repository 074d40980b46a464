"""PatchTST classifier: patches across all features -> pre-norm transformer -> one logit.

The design of the reference study (original-pipeline.md, "Model and search"): each window
of `context_len` days is cut into overlapping patches of `patch_len` days every `stride`
days; a patch is flattened across all features and projected to `d_model`; a learned
positional embedding is added; pre-norm encoder layers (attention + GELU feed-forward)
follow; a final LayerNorm, then the patches are flattened into one linear head.
Where dropout applies is the `dropout_sites` option (`engine.model.dropout_sites`).

The model returns logits. There is no sigmoid here: the loss is BCE with logits and
probabilities are taken only at evaluation (the reference applied a sigmoid twice).

This module imports nothing from training. `engine.model.params.count_params` is the
exact closed formula of `sum(p.numel() for p in PatchTST(...).parameters())`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.model.dropout_sites import DEFAULT as DEFAULT_SITES
from engine.model.dropout_sites import DropoutSites, parse_sites
from engine.model.params import n_patches


class EncoderLayer(nn.Module):
    """Pre-norm layer: x + Attn(LN(x)), then x + FFN(LN(x)), with dropout at the sites
    named in `sites` (`engine.model.dropout_sites`; default: both residual branches).

    Attention uses one fused qkv projection and PyTorch's fused scaled-dot-product
    attention; dropout on the attention weights (the `attention` site) needs the
    weights themselves, so in training it runs the explicit attention of
    `_math_attention` instead.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float,
        sites: DropoutSites = DEFAULT_SITES,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.drop_attention = "attention" in sites
        self.drop_attention_out = "attention_out" in sites
        self.drop_ffn_inner = "ffn_inner" in sites
        self.drop_ffn_out = "ffn_out" in sites
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape  # (B, N, D)
        h = self.n_heads
        p = self.dropout if self.training else 0.0
        qkv = _linear(self.qkv, self.norm1(x))  # (B, N, 3D)
        if self.drop_attention and p > 0:
            q, k, v = _split_heads(qkv, h)
            att = _math_attention(q, k, v, lambda w: dropout(w, p, True))
            att = att.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        elif x.device.type == "cpu" and b % 2 == 0:
            att = _paired_attention(qkv, h)
        else:
            q, k, v = _split_heads(qkv, h)
            att = _sdpa(q, k, v)  # (B, H, N, Dh)
            att = att.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        x = residual_dropout(
            x, _linear(self.proj, att), p if self.drop_attention_out else 0.0, True
        )
        inner = F.gelu(_linear(self.ff1, self.norm2(x)))  # (B, N, d_ff)
        if self.drop_ffn_inner:
            inner = dropout(inner, p, True)
        ff = _linear(self.ff2, inner)  # (B, N, D)
        return residual_dropout(x, ff, p if self.drop_ffn_out else 0.0, True)


def _split_heads(qkv: torch.Tensor, h: int) -> tuple[torch.Tensor, ...]:
    """(B, N, 3D) -> q, k, v of (B, H, N, Dh) each.

    unbind on the qkv axis, then transpose: in backward the three gradients stack
    straight into qkv's layout (a permute first costs one more copy).
    """
    b, n, d3 = qkv.shape
    return tuple(t.transpose(1, 2) for t in qkv.view(b, n, 3, h, d3 // 3 // h).unbind(2))


def _math_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    drop: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """softmax(q k^T / sqrt(Dh)), passed through `drop`, times v: (B, H, N, Dh).

    The attention with dropout on its weights (as nn.MultiheadAttention's `dropout`).
    CPU bf16 runs it in fp32, as `_sdpa` does.
    """
    dtype = q.dtype
    if q.device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        q, k, v = q.float(), k.float(), v.float()
    weights = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), dim=-1)
    return (drop(weights) @ v).to(dtype)


def _paired_attention(qkv: torch.Tensor, h: int) -> torch.Tensor:
    """Attention over (B, N, 3D) qkv with pairs of samples in one 2N-token sequence.

    A block-diagonal mask keeps each sample attending to its own N patches only, so the
    result is that of per-sample attention. CPU's flash kernel pays a fixed cost per
    (sample, head) problem that dominates at ~11 patches: halving their number made
    attention ~15% faster with 8 heads (measured, fwd+bwd). B must be even. With the
    math backend chosen (`set_attention_backend`) it is plain per-sample attention.
    """
    b, n, d3 = qkv.shape
    d, pairs = d3 // 3, b // 2
    if _attention_backend == "math":  # pairing only doubles the math kernel's work
        q, k, v = _split_heads(qkv, h)
        return _sdpa(q, k, v).transpose(1, 2).reshape(b, n, d)
    parts = qkv.view(pairs, 2, n, 3, h, d // h).unbind(3)  # (B/2, 2, N, H, Dh) each
    q, k, v = (t.permute(0, 3, 1, 2, 4).reshape(pairs, h, 2 * n, d // h) for t in parts)
    att = _sdpa(q, k, v, _pair_mask(n, qkv.device))
    return att.view(pairs, h, 2, n, d // h).permute(0, 2, 3, 1, 4).reshape(b, n, d)


FUSED_HEAD_DIM_MAX = 256  # largest head dim of the flash and cuDNN attention kernels
ATTENTION_BACKENDS = ("sdpa", "math")
_attention_backend = "sdpa"


def set_attention_backend(name: str) -> None:
    """The attention kernel of this process's models: "sdpa" (PyTorch's fused choice,
    with the exceptions `_sdpa` lists) or "math" (two batched matmuls and a softmax).

    Process-wide like `torch.set_num_threads`: a worker trains one trial (or one fused
    group) at a time and sets it per trial from a measurement
    (`engine.train.autotune`). On CPU the flash kernel's fixed cost per (sample, head)
    can exceed the math one's work at ~11 patches: math made a d64-L32-h8 step 1.30x
    faster on a Zen4 CPU, the opposite of an AMX CPU.
    """
    global _attention_backend
    if name not in ATTENTION_BACKENDS:
        raise ValueError(f"attention backend must be one of {ATTENTION_BACKENDS}, got {name!r}")
    _attention_backend = name


def attention_backend() -> str:
    return _attention_backend


def _sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Scaled-dot-product attention: fused, except where a fused kernel is slower.

    - CPU in bf16: in fp32, cast back. The matmuls run on AMX several times faster,
      but the CPU flash-attention kernel's bf16 backward is ~10x slower than its fp32
      one (9.3 vs 0.9 ms per call at d64-L48-h2, batch 256): it took half the step. In
      fp32 the attention costs four small casts instead.
    - CUDA with head dims above 256 (d_model 1024 with 2 heads, say): the flash and
      cuDNN kernels do not take them, and the memory-efficient kernel PyTorch then picks
      had a backward pass of 0.77 ms per layer, 45% of a d1024-L128-h2 step on an H200.
      Over ~11 patches the plain math (two batched matmuls and a softmax) made that
      step 1.41x faster (`bench/cuda_kernels.py --variants`).
    - the math backend everywhere when chosen for this process (`set_attention_backend`).
    """
    if _attention_backend == "math":
        with sdpa_kernel([SDPBackend.MATH]):
            return _sdpa_any(q, k, v, mask)
    return _sdpa_any(q, k, v, mask)


def _sdpa_any(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
        return out.to(q.dtype)
    if q.device.type == "cuda" and q.shape[-1] > FUSED_HEAD_DIM_MAX:
        with sdpa_kernel([SDPBackend.MATH]):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _pair_mask(n: int, device: torch.device) -> torch.Tensor:
    """(2N, 2N) bool mask, True within each sample's own N x N block."""
    sample = torch.arange(2 * n, device=device) // n
    return sample[:, None] == sample[None, :]


def residual_dropout(
    x: torch.Tensor, branch: torch.Tensor, p: float, training: bool
) -> torch.Tensor:
    """`x + F.dropout(branch, p, training)`: one elementwise pass forward, one backward.

    The mask comes from `keep_mask`, an order of magnitude cheaper on CPU than
    `bernoulli_` (which was the largest non-matmul cost of deep narrow models). Other
    devices keep F.dropout: its fused kernel is cheap there and CUDA-graph safe.
    """
    if not training or p <= 0.0:
        return x + branch
    if branch.device.type != "cpu":
        return x + F.dropout(branch, p, True)
    out: torch.Tensor = _AddMasked.apply(x, branch, keep_mask(branch, p))  # type: ignore[no-untyped-call]
    return out


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`F.dropout(x, p, training)`; on CPU with `keep_mask` (see `residual_dropout`)."""
    if not training or p <= 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    return x * keep_mask(x, p)


class _AddMasked(torch.autograd.Function):
    """x + branch * mask. Autograd's own addcmul backward multiplies by the mask and
    then again by its `value`; this one does the single multiply."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, branch: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(mask)
        return torch.addcmul(x, branch, mask)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad, grad * mask, None


def keep_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout mask shaped like `like`: 0 with probability p, else 1 / (1 - p).

    p is rounded to a multiple of 1/65536 (0.1 -> 0.100006) and the scale uses the
    rounded value, so the mask has mean 1. Random 64-bit words over the full int64 range
    are cut into four int16 lanes, each uniform over int16 and compared with one scalar
    threshold: one RNG draw per four elements instead of `bernoulli_`'s one per element.
    It draws from torch's default generator, so `manual_seed` repeats it.
    """
    n = like.numel()
    dropped = round(p * 65536)  # dropped values per 65536
    if dropped >= 65536:
        return torch.zeros_like(like)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=like.device)
    words.random_(-(2**63), None)  # full 64-bit range: every int16 lane is uniform
    keep = (words.view(torch.int16) >= dropped - 32768)[:n].view(like.shape)
    # via uint8: bool -> float is a slow scalar loop on CPU, uint8 -> float is vectorised
    return keep.view(torch.uint8).to(like.dtype).mul_(65536 / (65536 - dropped))


def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)`; on CPU as a matmul then an in-place bias add.

    nn.Linear on CPU runs addmm, which first broadcasts the bias into the output with a
    slow strided copy; for the small, many matmuls of deep narrow models that copy costs
    a quarter of the layer's time. A plain matmul plus a vectorised in-place add (no new
    buffer: mm's backward does not need its output) gives the same values and gradients.
    On GPUs the reverse holds: cuBLAS adds the bias in the matmul's epilogue, and the
    separate add (a bf16 output plus an fp32 bias under autocast) was a slow kernel of
    its own; nn.Linear made captured steps 5-9% faster on an H200
    (`bench/cuda_kernels.py --variants`).
    """
    if x.device.type != "cpu":
        out: torch.Tensor = layer(x)
        return out
    return F.linear(x, layer.weight).add_(layer.bias)


class PatchTST(nn.Module):
    """Binary classifier over a (B, context_len, n_features) window; returns (B,) logits.

    `dropout` applies at `dropout_sites` (a preset name or site names:
    `engine.model.dropout_sites`), `head_dropout` before the head.
    """

    def __init__(
        self,
        arch: Architecture,
        n_features: int,
        context_len: int = 60,
        patch_len: int = 10,
        stride: int = 5,
        dropout: float = 0.1,
        head_dropout: float = 0.0,
        dropout_sites: DropoutSites = DEFAULT_SITES,
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
        try:
            self.dropout_sites = parse_sites(dropout_sites)
        except ValueError as error:
            raise UserError(str(error), where="dropout_sites") from None
        self.layers = nn.ModuleList(
            EncoderLayer(d, arch.n_heads, arch.d_ff, dropout, self.dropout_sites)
            for _ in range(arch.n_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(self.n_patches * d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, f = x.shape  # (B, T, F)
        if t != self.context_len or f != self.n_features:
            raise ValueError(
                f"PatchTST expects (B, {self.context_len}, {self.n_features}), got {tuple(x.shape)}"
            )
        x = x.to(self.embed.weight.dtype)  # a bf16 model (CPU bf16 training) takes bf16
        patches = x.unfold(1, self.patch_len, self.stride)  # (B, N, F, P)
        patches = patches.reshape(b, self.n_patches, f * self.patch_len)  # (B, N, F*P)
        z = self.embed(patches) + self.pos  # (B, N, D)
        if "embedding" in self.dropout_sites:
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
