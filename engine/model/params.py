"""Exact parameter count of `engine.model.patchtst.PatchTST`, without building it.

Equal to `sum(p.numel() for p in model.parameters())` for every architecture (tested over
every architecture of the 2M, 20M, 200M and 2B grids). n_heads does not change it.
"""

from __future__ import annotations

from engine.errors import UserError
from engine.model.architecture import Architecture


def n_patches(context_len: int = 60, patch_len: int = 10, stride: int = 5) -> int:
    """Patches cut from a window: floor((context_len - patch_len) / stride) + 1."""
    if patch_len < 1 or stride < 1 or context_len < patch_len:
        raise UserError(
            f"need 1 <= patch_len <= context_len and stride >= 1, got context_len "
            f"{context_len}, patch_len {patch_len}, stride {stride}",
            where="model",
        )
    return (context_len - patch_len) // stride + 1


def layer_params(d_model: int, d_ff: int) -> int:
    """One encoder layer: two LayerNorms, fused qkv, output projection, feed-forward."""
    d = d_model
    norms = 2 * (2 * d)  # weight + bias each
    attention = (3 * d * d + 3 * d) + (d * d + d)  # qkv + proj
    feed_forward = (d * d_ff + d_ff) + (d_ff * d + d)  # ff1 + ff2
    return norms + attention + feed_forward


def count_params(
    arch: Architecture,
    n_features: int,
    context_len: int = 60,
    patch_len: int = 10,
    stride: int = 5,
) -> int:
    """Parameters of PatchTST(arch, n_features, context_len, patch_len, stride)."""
    d = arch.d_model
    n = n_patches(context_len, patch_len, stride)
    embed = patch_len * n_features * d + d
    position = n * d
    final_norm = 2 * d
    head = n * d + 1
    return embed + position + arch.n_layers * layer_params(d, arch.d_ff) + final_norm + head
