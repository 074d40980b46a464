"""One optimizer step of a fused group: K trials' AdamW, clipping and schedules at once.

`FusedAdamW` steps the (K, row) parameter buffer of a `FusedPatchTST`: row k is trial k's
parameters, so each trial's learning rate (its own warmup/cosine schedule), weight decay
and gradient-norm clip are (K,) vectors broadcast over the rows. It is AdamW exactly as
torch's (decoupled decay, bias corrections, eps outside the square root), written as
whole-buffer tensor ops with the step count and rates as device tensors, so it can be
captured in a CUDA graph. A bf16 model (CPU bf16 training) keeps fp32 masters,
gradients and moments here, as the solo path's `FlatAdamW`.

`FusedStep(x, y)` takes x (K, B, T, F) and y (K, B) and returns the (K,) mean BCE of each
trial's batch. The K losses are summed before backward: trial k's loss depends only on
row k, so each row gets only its trial's gradient. On CUDA, `cuda_graph=True` captures
the step after a few eager steps (as `engine.train.step.TrainStep`).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import torch
import torch.nn.functional as F

from engine.model.fused import FusedPatchTST
from engine.train.step import WARMUP_GRAPH_STEPS

BETAS = (0.9, 0.999)  # torch.optim.AdamW's defaults, which the solo path uses
EPS = 1e-8
CLIP_EPS = 1e-6  # as torch.nn.utils.clip_grad_norm_


class FusedAdamW:
    """AdamW with a learning rate, weight decay and gradient clip per trial (row)."""

    def __init__(
        self,
        model: FusedPatchTST,
        weight_decay: list[float],
        grad_clip: list[float],
    ) -> None:
        self.model = model
        rows = model.rows
        device = rows.device
        self.low = rows if rows.dtype != torch.float32 else None
        self.master = rows.float().clone() if self.low is not None else rows
        self.master_grad = torch.zeros_like(self.master)
        if self.low is None:
            model.attach(rows, self.master_grad)  # autograd adds straight into fp32
        self.m = torch.zeros_like(self.master)
        self.v = torch.zeros_like(self.master)
        self.decay_columns = model.decay_columns
        self.lr = torch.zeros(model.k, 1, device=device)
        self.weight_decay = torch.tensor(weight_decay, device=device).view(-1, 1)
        clip = torch.tensor(grad_clip, device=device).view(-1, 1)
        self.grad_clip = torch.where(clip > 0, clip, torch.full_like(clip, math.inf))
        self.clips = any(c > 0 for c in grad_clip)
        self.step_count = torch.zeros((), device=device)

    def zero_grad(self) -> None:
        self.master_grad.zero_()
        if self.low is not None:
            self.model.grads.zero_()

    @torch.no_grad()
    def collect_grads(self) -> None:
        """After a backward pass: add a bf16 model's gradients into the fp32 ones."""
        if self.low is not None:
            self.master_grad.add_(self.model.grads)
            self.model.grads.zero_()

    @torch.no_grad()
    def step(self) -> None:
        g, p = self.master_grad, self.master
        if self.clips:  # each trial's global norm, as clip_grad_norm_ over its parameters
            norm = torch.linalg.vector_norm(g, dim=1, keepdim=True)  # (K, 1)
            g.mul_((self.grad_clip / (norm + CLIP_EPS)).clamp_(max=1.0))
        self.step_count += 1
        b1, b2 = BETAS
        bias1 = 1 - torch.pow(b1, self.step_count)
        bias2_sqrt = (1 - torch.pow(b2, self.step_count)).sqrt()
        decayed = p[:, : self.decay_columns]
        decayed.mul_(1 - self.lr * self.weight_decay)
        self.m.lerp_(g, 1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.v.sqrt() / bias2_sqrt).add_(EPS)
        p.addcdiv_(self.m * (-self.lr / bias1), denom)
        if self.low is not None:
            self.low.copy_(p)

    def set_lr(self, rates: list[float]) -> None:
        self.lr.copy_(torch.tensor(rates, dtype=torch.float32).view(-1, 1), non_blocking=True)

    def repack(self, keep: list[int]) -> None:
        """Keep the trials at `keep`: their rows of parameters, gradients and moments."""
        index = torch.tensor(keep, device=self.master.device)
        for name in ("m", "v", "lr", "weight_decay", "grad_clip"):
            setattr(self, name, getattr(self, name).index_select(0, index))
        self.master_grad = torch.zeros(len(keep), self.master.shape[1], device=self.master.device)
        if self.low is None:
            self.model.repack(keep, self.master_grad)
            self.master = self.model.rows
        else:
            self.master = self.master.index_select(0, index)
            self.model.repack(keep)
            self.low = self.model.rows


class FusedStep:
    """Callable optimizer step of a fused group: `losses = step(x, y)`, (K,) detached."""

    def __init__(
        self,
        model: FusedPatchTST,
        optimizer: FusedAdamW,
        *,
        autocast_dtype: torch.dtype | None = None,
        cuda_graph: bool = False,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.autocast_dtype = autocast_dtype
        self.device = model.rows.device
        self.cuda_graph = cuda_graph and self.device.type == "cuda"
        self.steps = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._stream: torch.cuda.Stream | None = None
        self._capture_from = WARMUP_GRAPH_STEPS  # eager steps first, as capture requires

    def __call__(self, x: torch.Tensor, y: torch.Tensor, rates: list[float]) -> torch.Tensor:
        if not self.model.training:
            self.model.train()
        self.optimizer.set_lr(rates)
        loss = self._graph_step(x, y) if self.cuda_graph else self._step(x, y)
        self.steps += 1
        return loss

    def invalidate(self) -> None:
        """After a repack: shapes changed, a captured graph no longer applies."""
        self._graph, self._static = None, None
        self._capture_from = self.steps + 1  # one eager step at the new shape first

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad()
        ctx: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if self.autocast_dtype is not None:
            ctx = torch.autocast(self.device.type, dtype=self.autocast_dtype, cache_enabled=False)
        with ctx:
            logits = self.model(x)  # (K, B)
        losses = F.binary_cross_entropy_with_logits(
            logits.float(), y.to(torch.float32), reduction="none"
        ).mean(dim=1)  # (K,)
        with warnings.catch_warnings():
            # The stacked parameters are strided views into the (K, row) buffer by design
            # (one op a step for K trials); autograd hints (once) that such views are
            # not dense. Expected here, not a user's concern.
            warnings.filterwarnings("ignore", message="grad and param do not obey")
            torch.autograd.backward(losses.sum())
        self.optimizer.collect_grads()
        self.optimizer.step()
        return losses.detach()

    def _graph_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self._graph is not None and self._static is not None:
            sx, sy, sloss = self._static
            if sx.shape == x.shape:
                sx.copy_(x, non_blocking=True)
                sy.copy_(y, non_blocking=True)
                self._graph.replay()
                return sloss.clone()
        if self._graph is None and self.steps >= self._capture_from:
            sx, sy = x.clone(), y.clone()
            self.optimizer.zero_grad()
            graph = torch.cuda.CUDAGraph()
            torch.cuda.synchronize(self.device)
            with torch.cuda.graph(graph):
                sloss = self._step(sx, sy)
            self._graph, self._static = graph, (sx, sy, sloss)
            graph.replay()
            return sloss.clone()
        if self._stream is None:  # warm-up on a side stream, as capture requires
            self._stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            loss = self._step(x, y)
        torch.cuda.current_stream(self.device).wait_stream(self._stream)
        return loss
