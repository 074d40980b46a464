"""A plain re-implementation of the reference pipeline's model and loop (the baseline).

What the reference did (original-pipeline.md; its src/models/patchtst.py): pre-norm
layers of nn.MultiheadAttention and a GELU feed-forward, a sigmoid inside the model then
nn.BCELoss, a Dataset that slices one window per `__getitem__` and a DataLoader that
collates batches, AdamW with default settings, gradient clipping, and the loss read back
with `.item()` every batch. Same parameter count as engine.model.patchtst.PatchTST, so
the two do the same arithmetic.

Dropout where the reference had it: the embeddings, and per layer the attention weights
(nn.MultiheadAttention's `dropout`), the feed-forward hidden units and the feed-forward
output; nothing on the attention branch's output. hpotui's `dropout_sites = "reference"`
is the same set (engine.model.dropout_sites).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class RefLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_ff),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(d_ff, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        a, _ = self.attn(h, h, h)
        x = x + a  # the reference: no dropout on the attention output
        out: torch.Tensor = x + self.ff(self.norm2(x))
        return out


class RefPatchTST(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_layers: int,
        n_heads: int,
        d_ff: int,
        n_features: int,
        context_len: int = 60,
        patch_len: int = 10,
        stride: int = 5,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.patch_len, self.stride = patch_len, stride
        self.n_patches = (context_len - patch_len) // stride + 1
        self.embed = nn.Linear(patch_len * n_features, d_model)
        self.pos = nn.Parameter(torch.randn(1, self.n_patches, d_model) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            RefLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(self.n_patches * d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        patches = x.unfold(1, self.patch_len, self.stride).reshape(b, self.n_patches, -1)
        z = self.drop(self.embed(patches) + self.pos)
        for layer in self.layers:
            z = layer(z)
        z = self.norm(z).reshape(b, -1)
        return torch.sigmoid(self.head(z)).squeeze(-1)  # the reference's sigmoid


class WindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """One window per index, sliced from the feature matrix (per-sample Python)."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, context_len: int) -> None:
        self.features, self.labels, self.context_len = features, labels, context_len

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[i : i + self.context_len], self.labels[i]


class RefTrainer:
    """The reference loop: DataLoader batches, BCELoss on probabilities, .item() per step."""

    def __init__(
        self,
        model: RefPatchTST,
        dataset: WindowDataset,
        batch_size: int,
        device: torch.device,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        self.model, self.device = model.to(device), device
        self.autocast_dtype = autocast_dtype
        self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
        self.loss = nn.BCELoss()
        self._batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = iter(())

    def step(self) -> float:
        try:
            x, y = next(self._batches)
        except StopIteration:
            self._batches = iter(self.loader)
            x, y = next(self._batches)
        x, y = x.to(self.device), y.to(self.device)
        self.model.train()
        self.optimizer.zero_grad()
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            out = self.model(x)
        loss = self.loss(out.float(), y)  # BCELoss refuses autocast
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return float(loss.item())
