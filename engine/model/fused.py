"""K PatchTSTs of one architecture as one model: every parameter gains a leading trial axis.

A campaign trains hundreds of small models whose steps are overhead-bound (launches,
per-op dispatch, tiny matmuls), so K same-shape trials run as one wider model go faster
than K runs one after another (HFTA, MLSys 2021). Here:
- every parameter of `PatchTST` is stacked to (K, *its shape), under the same name; the
  linear layers become batched matmuls over the trial axis, attention runs over
  (trials x samples) x heads, LayerNorm normalises without affine and then applies each
  trial's own weight and bias, and each trial has its own dropout rate (at the
  group's one set of `dropout_sites`);
- the stacked parameters are views into one (K, row) buffer, row k holding trial k's
  parameters (decayed ones first: `decay_columns`), so the optimizer clips, decays and
  steps each trial's row with that trial's own settings in a few whole-buffer ops
  (`engine.train.fused_step.FusedAdamW`), and a trial that stops leaves by `repack`;
- trial k's loss depends only on row k, so the gradient of the summed loss of the K
  trials puts each trial's gradients in its own row and nowhere else.

`FusedPatchTST.stack(models)` builds the group from K solo models (each initialised with
its own seed, exactly as a solo trial would be), `member_state_dict(k)` is a solo
`PatchTST.load_state_dict`'s input again. With dropout 0 in fp32 the forward pass equals
the K solo models' to float rounding (tests/model/test_fused.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.architecture import Architecture
from engine.model.patchtst import (
    PatchTST,
    _math_attention,
    _paired_attention,
    _sdpa,
    _split_heads,
)

_ALIGN = 16  # elements: each parameter's slice of a row starts on a 64-byte boundary


class FusedPatchTST(nn.Module):
    """K same-architecture PatchTSTs; forward takes (K, B, T, F) or a shared (B, T, F)
    and returns (K, B) logits. Build it with `FusedPatchTST.stack`."""

    def __init__(self, template: PatchTST, rows: torch.Tensor, names: list[str]) -> None:
        super().__init__()
        self.arch: Architecture = template.arch
        self.n_features = template.n_features
        self.context_len = template.context_len
        self.patch_len = template.patch_len
        self.stride = template.stride
        self.n_patches = template.n_patches
        self.dropout_sites = template.dropout_sites
        shapes = {name: tuple(t.shape) for name, t in template.state_dict().items()}
        self.names = names
        self.shapes = [shapes[n] for n in names]
        self.offsets: list[int] = []
        total = 0
        for shape in self.shapes:
            self.offsets.append(total)
            total += -(-_numel(shape) // _ALIGN) * _ALIGN
        assert rows.shape[1] == total
        #: columns [0, decay_columns) of a row hold the parameters AdamW decays
        self.decay_columns = next(
            (
                off
                for name, off in zip(names, self.offsets, strict=True)
                if not _decays(shapes[name])
            ),
            total,
        )
        self._index = {name: i for i, name in enumerate(names)}
        self.params = nn.ParameterList(nn.Parameter(torch.empty(0)) for _ in names)
        self.dropout = torch.zeros(rows.shape[0])
        self.head_dropout = torch.zeros(rows.shape[0])
        self.attach(rows, torch.zeros_like(rows))

    # ------------------------------------------------------------------ building

    @classmethod
    def stack(
        cls, models: list[PatchTST], dropout: list[float], head_dropout: list[float]
    ) -> FusedPatchTST:
        """The fused model of `models` (same architecture and data shape, one dtype)."""
        first = models[0]
        if any(
            (m.arch, m.n_features, m.context_len, m.patch_len, m.stride, m.dropout_sites)
            != (
                first.arch,
                first.n_features,
                first.context_len,
                first.patch_len,
                first.stride,
                first.dropout_sites,
            )
            for m in models
        ):
            raise ValueError(
                "fused trials need one architecture, one data shape and one dropout_sites"
            )
        states = [m.state_dict() for m in models]
        shapes = {name: tuple(t.shape) for name, t in states[0].items()}
        # decayed parameters (matrices, the positional embedding) first
        names = sorted(shapes, key=lambda n: not _decays(shapes[n]))
        offsets, total = [], 0
        for name in names:
            offsets.append(total)
            total += -(-_numel(shapes[name]) // _ALIGN) * _ALIGN
        weight = states[0][names[0]]
        rows = torch.zeros(len(models), total, dtype=weight.dtype, device=weight.device)
        for k, state in enumerate(states):
            for name, off in zip(names, offsets, strict=True):
                t = state[name].reshape(-1)
                rows[k, off : off + t.numel()].copy_(t)
        fused = cls(first, rows, names)
        fused.dropout = torch.tensor(dropout, dtype=torch.float32)
        fused.head_dropout = torch.tensor(head_dropout, dtype=torch.float32)
        return fused

    @property
    def k(self) -> int:
        return int(self.rows.shape[0])

    def attach(self, rows: torch.Tensor, grads: torch.Tensor) -> None:
        """Make every stacked parameter (and its gradient) a view into `rows` (`grads`).

        Autograd then adds each backward pass's gradients into the `grads` views in
        place, so they must be zeroed, never set to None (FusedAdamW.zero_grad).
        """
        self.rows, self.grads = rows, grads
        k = rows.shape[0]
        with torch.no_grad():
            for p, shape, off in zip(self.params, self.shapes, self.offsets, strict=True):
                n = _numel(shape)
                p.data = rows[:, off : off + n].view(k, *shape)
                p.grad = grads[:, off : off + n].view(k, *shape)

    def repack(self, keep: list[int], grads: torch.Tensor | None = None) -> None:
        """Keep only the trials at indices `keep` (in that order): rows, rates."""
        index = torch.tensor(keep, device=self.rows.device)
        rows = self.rows.index_select(0, index)
        self.attach(rows, torch.zeros_like(rows) if grads is None else grads)
        self.dropout = self.dropout[keep]
        self.head_dropout = self.head_dropout[keep]

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Trial k's weights as a solo `PatchTST` state dict (copies)."""
        return self.row_state_dict(self.rows[k].detach().clone())

    def row_state_dict(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        """A saved row (`rows[k]`, any device) as a solo `PatchTST` state dict (views)."""
        return {
            name: row[off : off + _numel(shape)].view(shape)
            for name, shape, off in zip(self.names, self.shapes, self.offsets, strict=True)
        }

    def _p(self, name: str) -> torch.Tensor:
        param: torch.Tensor = self.params[self._index[name]]
        return param

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.k
        if x.dim() == 3:  # one batch for every trial (evaluation)
            x = x.unsqueeze(0).expand(k, *x.shape)
        kk, b, t, f = x.shape  # (K, B, T, F)
        if kk != k or t != self.context_len or f != self.n_features:
            raise ValueError(
                f"FusedPatchTST expects ({k}, B, {self.context_len}, {self.n_features}), "
                f"got {tuple(x.shape)}"
            )
        n, d = self.n_patches, self.arch.d_model
        x = x.to(self.rows.dtype)
        patches = x.unfold(2, self.patch_len, self.stride)  # (K, B, N, F, P)
        patches = patches.reshape(k, b * n, f * self.patch_len)  # (K, B*N, F*P)
        z = self._linear("embed", patches).view(k, b, n, d) + self._p("pos")  # (K, B, N, D)
        if "embedding" in self.dropout_sites:
            z = self._dropout_add(None, z, self.dropout)
        for i in range(self.arch.n_layers):
            z = self._layer(i, z)
        z = self._norm("norm", z).reshape(k, b, n * d)  # (K, B, N*D)
        z = self._dropout_add(None, z, self.head_dropout)
        return self._linear("head", z).squeeze(-1)  # (K, B)

    def _layer(self, i: int, x: torch.Tensor) -> torch.Tensor:
        k, b, n, d = x.shape  # (K, B, N, D)
        h = self.arch.n_heads
        pre = f"layers.{i}."
        qkv = self._linear(pre + "qkv", self._norm(pre + "norm1", x).view(k, b * n, d))
        qkv = qkv.view(k * b, n, 3 * d)  # attention over (trials x samples) x heads
        sites, rates = self.dropout_sites, self.dropout
        if "attention" in sites and self.training and bool((rates > 0).any()):
            q, kt, v = _split_heads(qkv, h)  # (K*B, H, N, Dh); weights (K*B, H, N, N)
            att = _math_attention(
                q, kt, v, lambda w: self._dropout_add(None, w.view(k, -1), rates).view_as(w)
            )
            att = att.transpose(1, 2).reshape(k * b, n, d)  # (K*B, N, D)
        elif x.device.type == "cpu" and (k * b) % 2 == 0:
            att = _paired_attention(qkv, h)
        else:
            q, kt, v = (t.transpose(1, 2) for t in qkv.view(k * b, n, 3, h, d // h).unbind(2))
            att = _sdpa(q, kt, v).transpose(1, 2).reshape(k * b, n, d)  # (K*B, N, D)
        proj = self._linear(pre + "proj", att.view(k, b * n, d)).view(k, b, n, d)
        x = self._dropout_add(x, proj, rates) if "attention_out" in sites else x + proj
        inner = F.gelu(self._linear(pre + "ff1", self._norm(pre + "norm2", x).view(k, b * n, d)))
        if "ffn_inner" in sites:
            inner = self._dropout_add(None, inner, rates)
        ff = self._linear(pre + "ff2", inner).view(k, b, n, d)
        return self._dropout_add(x, ff, rates) if "ffn_out" in sites else x + ff

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """x (K, M, in) -> (K, M, out) with trial k's weight and bias: one bmm.

        On CPU a bmm then an in-place bias add (as `patchtst._linear`: the broadcast of
        the bias into the output was the slow part); on GPUs baddbmm (the epilogue).
        """
        w, bias = self._p(name + ".weight"), self._p(name + ".bias")  # (K, out, in), (K, out)
        if x.device.type == "cpu":
            return torch.bmm(x, w.mT).add_(bias.unsqueeze(1))
        return torch.baddbmm(bias.unsqueeze(1), x, w.mT)

    def _norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Per-trial LayerNorm over the last axis of x (K, ..., D)."""
        w, bias = self._p(name + ".weight"), self._p(name + ".bias")  # (K, D)
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        normed = F.layer_norm(x, (x.shape[-1],))
        return torch.addcmul(bias.view(shape), normed, w.view(shape))

    def _dropout_add(
        self, x: torch.Tensor | None, branch: torch.Tensor, rates: torch.Tensor
    ) -> torch.Tensor:
        """x + dropout(branch) with trial k's rate on branch[k] (x None: dropout only)."""
        if self.training and bool((rates > 0).any()):
            branch = branch * fused_keep_mask(branch, self._on_device(rates))
        return branch if x is None else x + branch

    def _on_device(self, rates: torch.Tensor) -> torch.Tensor:
        """`rates` on the parameters' device, copied once (a copy from host memory is not
        allowed inside a CUDA-graph capture; the eager warm-up steps fill this cache)."""
        device = self.rows.device
        if device.type == "cpu":
            return rates
        cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = self.__dict__.setdefault(
            "_rate_cache", {}
        )
        hit = cache.get(id(rates))
        if hit is None or hit[0] is not rates:
            hit = (rates, rates.to(device))
            cache[id(rates)] = hit
        return hit[1]


def fused_keep_mask(like: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    """Dropout mask shaped like `like` (K, ...): 0 with probability rates[k], else
    1 / (1 - rates[k]), from torch's default generator.

    On CPU as `patchtst.keep_mask` (int16 lanes of random 64-bit words compared with a
    threshold, one RNG draw per four elements), with a threshold per trial.
    """
    k = like.shape[0]
    view = (k,) + (1,) * (like.dim() - 1)
    if like.device.type != "cpu":
        r = rates.to(like.device, torch.float32).view(view)  # already there: no copy
        keep = torch.rand(like.shape, device=like.device) >= r
        return keep.to(like.dtype) / (1 - r).to(like.dtype)
    dropped = torch.round(rates.double() * 65536).clamp_(max=65535).to(torch.int32)
    n = like.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=like.device)
    words.random_(-(2**63), None)  # full 64-bit range: every int16 lane is uniform
    lanes = words.view(torch.int16)[:n].view(like.shape)
    keep = lanes >= (dropped - 32768).to(torch.int16).view(view)
    scale = (65536.0 / (65536 - dropped).double()).to(like.dtype).view(view)
    return keep.view(torch.uint8).to(like.dtype).mul_(scale)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _decays(shape: tuple[int, ...]) -> bool:
    """AdamW decays matrices and the (1, N, D) positional embedding, as the solo path
    (`engine.train.step.build_optimizer`: parameters with two or more dimensions)."""
    return len(shape) >= 2
