"""One optimizer step of a trial: the hot path the trainer loop calls once per batch.

`TrainStep(x, y)` does BCE-with-logits forward/backward over micro-batches (gradient
accumulation keeps the effective batch when the memory guard shrinks it), clips the
gradient norm, steps the optimizer and the scheduler, and returns the batch's mean loss
as a detached 0-d tensor. It never calls `.item()`: the caller decides when to sync.

On CUDA, `cuda_graph=True` captures the whole step (forward, backward, clipping, AdamW)
into one CUDA graph after a few eager warm-up steps and replays it for every full-size
batch; this removes the kernel-launch overhead that makes small deep models launch-bound.
A batch of another size (the last one of an epoch) runs eagerly. The optimizer must then
be built with `build_optimizer(..., capturable=True)`.

`build_optimizer` is the optimizer a trial uses; it lives here so the step and what it
steps agree (fused/foreach AdamW, a tensor learning rate for graph capture). The
schedule is `engine.train.schedule.warmup_cosine`, stepped here once per optimizer step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

WARMUP_GRAPH_STEPS = 3


def build_optimizer(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    *,
    capturable: bool = False,
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not biases, norms); fused.

    The positional embedding is a (1, N, D) parameter: decayed like a matrix. On CPU the
    parameters are first made views into one flat buffer per group (`flatten_group`),
    and AdamW steps those two flat tensors: a 48-layer model has ~580 small parameters,
    and the per-tensor overhead of AdamW and clipping over them was ~40 ms a step.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    device = next(model.parameters()).device
    if device.type == "cuda":
        lr: float | torch.Tensor = learning_rate
        if capturable:
            lr = torch.tensor(learning_rate, device=device)
        return torch.optim.AdamW(groups, lr=lr, fused=True, capturable=capturable)
    return FlatAdamW(groups, lr=learning_rate)


class FlatAdamW(torch.optim.AdamW):
    """Fused AdamW over one flat buffer per parameter group (CPU).

    `param_groups` still list the model's own parameters (schedulers set their "lr",
    callers look up which parameters decay); `step` copies the groups' hyperparameters
    to an inner fused AdamW over the groups' flat tensors (`flatten_group`), which holds
    the moments (so `self.inner.state_dict()`, not this one's, has them; no caller saves
    optimizer state). `flat_params` are the fp32 flat tensors AdamW steps: `zero_grad`
    zeroes them and `TrainStep` clips them instead of the ~580 small gradients.

    A model in bf16 (CPU bf16 training, `engine.train.device.split_precision`) keeps fp32
    master weights here: its parameters are views into a bf16 flat buffer, `flat_params`
    are fp32 copies of those buffers, `collect_grads` adds the bf16 gradients of a
    backward pass into the fp32 ones (so micro-batches accumulate in fp32), and `step`
    updates the fp32 masters and rounds them back into the model.
    """

    def __init__(self, groups: list[dict[str, Any]], lr: float) -> None:
        groups = [g for g in groups if g["params"]]
        super().__init__(groups, lr=lr, fused=True)
        model_flats = [flatten_group(g["params"]) for g in self.param_groups]
        if model_flats[0].dtype == torch.float32:
            self.flat_params, self._low_flats = model_flats, []
        else:
            self.flat_params, self._low_flats = [_master(f) for f in model_flats], model_flats
        inner = [
            {**g, "params": [f]} for g, f in zip(self.param_groups, self.flat_params, strict=True)
        ]
        self.inner = torch.optim.AdamW(inner, lr=lr, fused=True)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        assert closure is None, "FlatAdamW takes no closure"
        for outer, inner in zip(self.param_groups, self.inner.param_groups, strict=True):
            inner.update({k: v for k, v in outer.items() if k != "params"})
        self.inner.step()
        for low, master in zip(self._low_flats, self.flat_params, strict=False):
            low.copy_(master)

    @torch.no_grad()
    def collect_grads(self) -> None:
        """After a backward pass: move a bf16 model's gradients into the fp32 masters."""
        for low, master in zip(self._low_flats, self.flat_params, strict=False):
            assert low.grad is not None and master.grad is not None
            master.grad.add_(low.grad)
            low.grad.zero_()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the flat gradients; the parameters' gradients are views into them."""
        for flat in [*self.flat_params, *self._low_flats]:
            assert flat.grad is not None
            flat.grad.zero_()
        for flat in self._low_flats or self.flat_params:  # the buffers the model views
            for p, view in flat._flat_views:  # type: ignore[attr-defined]
                if p.grad is not view:  # someone set it to None or replaced it
                    p.grad = view


def _master(flat: nn.Parameter) -> nn.Parameter:
    """An fp32 copy of a low-precision flat parameter, with a zero fp32 gradient."""
    master = nn.Parameter(flat.detach().float())
    master.grad = torch.zeros_like(master)
    return master


_ALIGN = 16  # floats: each parameter starts on a 64-byte boundary, as MKL prefers


def flatten_group(params: list[nn.Parameter]) -> nn.Parameter:
    """Move `params` (values and gradients) into one flat buffer; return it as a Parameter.

    Afterwards each parameter's `.data` and `.grad` are views into the flat tensor and its
    `.grad`, so the model, `state_dict`/`load_state_dict` (which copy in place) and the
    optimizer stepping the flat tensor all see the same numbers. Autograd accumulates
    into the existing `.grad` views in place, so gradients must be zeroed, never set to
    None (`FlatAdamW.zero_grad` does so and re-attaches the views if someone did). Padding between
    parameters stays zero: its gradient is zero, AdamW leaves it there, norms ignore it.
    """
    sizes = [p.numel() for p in params]
    offsets: list[int] = []
    total = 0
    for n in sizes:
        offsets.append(total)
        total += -(-n // _ALIGN) * _ALIGN
    first = params[0]
    if any(p.dtype != first.dtype or p.device != first.device for p in params):
        raise ValueError("flatten_group needs parameters of one dtype on one device")
    flat = torch.zeros(total, dtype=first.dtype, device=first.device)
    grad = torch.zeros_like(flat)
    with torch.no_grad():
        for p, off, n in zip(params, offsets, sizes, strict=True):
            flat[off : off + n].copy_(p.reshape(-1))
            p.data = flat[off : off + n].view_as(p)
            p.grad = grad[off : off + n].view_as(p)
    out = nn.Parameter(flat)
    out.grad = grad
    out._flat_views = [(p, p.grad) for p in params]  # type: ignore[attr-defined]
    return out


class TrainStep:
    """Callable optimizer step: `loss = step(x, y)` with x (B, T, F), y (B,) in {0, 1}."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        *,
        grad_clip: float | None = 1.0,
        autocast_dtype: torch.dtype | None = None,
        micro_batch: int | None = None,
        cuda_graph: bool = False,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.grad_clip = grad_clip if grad_clip and grad_clip > 0 else None
        self.autocast_dtype = autocast_dtype
        self.micro_batch = micro_batch
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.device = self.params[0].device
        # what clipping walks: the flat gradients when the optimizer keeps them flat
        self._clipped = list(getattr(optimizer, "flat_params", self.params))
        # a bf16 model's gradients move into fp32 masters after each backward pass
        self._collect_grads = getattr(optimizer, "collect_grads", None)
        self.cuda_graph = cuda_graph and self.device.type == "cuda"
        self.steps = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_batch = 0
        self._largest_batch = 0
        self._static: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._stream: torch.cuda.Stream | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.model.training:  # evaluation switched it; walking modules costs
            self.model.train()
        if self.cuda_graph:
            loss = self._graph_step(x, y)
        else:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._forward_backward(x, y)
            self._clip_and_step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.steps += 1
        return loss

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        # cache off: required under graph capture, and weights change every step anyway
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, cache_enabled=False)

    def _chunks(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        size = self.micro_batch or x.shape[0]
        if size >= x.shape[0]:
            yield x, y
        else:
            yield from zip(torch.split(x, size), torch.split(y, size), strict=True)

    def _forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean BCE over the whole batch; gradients accumulated over micro-batches."""
        batch = x.shape[0]
        total: torch.Tensor | None = None
        for xs, ys in self._chunks(x, y):
            with self._autocast():
                logits = self.model(xs)  # (b,)
            loss = (
                F.binary_cross_entropy_with_logits(
                    logits.float(), ys.to(torch.float32), reduction="sum"
                )
                / batch
            )
            torch.autograd.backward(loss)
            if self._collect_grads is not None:
                self._collect_grads()
            part = loss.detach()
            total = part if total is None else total + part
        assert total is not None
        return total

    def _clip_and_step(self) -> None:
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self._clipped, self.grad_clip, foreach=True)
        self.optimizer.step()

    def _graph_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self._largest_batch = max(self._largest_batch, x.shape[0])
        if self._graph is not None and x.shape[0] == self._graph_batch:
            assert self._static is not None
            sx, sy, sloss = self._static
            sx.copy_(x, non_blocking=True)
            sy.copy_(y, non_blocking=True)
            self._graph.replay()
            return sloss.clone()
        if (
            self._graph is None
            and self.steps >= WARMUP_GRAPH_STEPS
            and x.shape[0] == self._largest_batch
        ):
            return self._capture(x, y)
        # warm-up steps (on a side stream, as capture requires) and odd-sized batches
        if self._stream is None:
            self._stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._forward_backward(x, y)
            self._clip_and_step()
        torch.cuda.current_stream(self.device).wait_stream(self._stream)
        return loss

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        sx, sy = x.clone(), y.clone()
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self.device)
        with torch.cuda.graph(graph):
            sloss = self._forward_backward(sx, sy)
            self._clip_and_step()
        self._graph, self._graph_batch, self._static = graph, x.shape[0], (sx, sy, sloss)
        graph.replay()  # capture records only; this runs the step for (x, y)
        return sloss.clone()
