"""TrainStep: the per-batch hot path (loss, accumulation, clipping, optimizer, schedule)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from engine.model.architecture import Architecture
from engine.model.patchtst import PatchTST
from engine.train.step import TrainStep, build_optimizer

ARCH = Architecture(16, 2, 2, 32)


def _model(seed: int = 0, dropout: float = 0.0) -> PatchTST:
    torch.manual_seed(seed)
    return PatchTST(ARCH, n_features=3, dropout=dropout)


def _batch(n: int = 12, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 60, 3, generator=g)
    y = (x[:, -1, 0] > 0).float()  # learnable: the sign of the last value of feature 0
    return x, y


def _step(model: PatchTST, **kwargs: object) -> TrainStep:
    opt = build_optimizer(model, 1e-2, 0.0)
    return TrainStep(model, opt, **kwargs)  # type: ignore[arg-type]


def test_loss_is_mean_bce_with_logits_before_the_update() -> None:
    model = _model()
    x, y = _batch()
    with torch.no_grad():
        expected = F.binary_cross_entropy_with_logits(model.eval()(x), y)
    loss = _step(model)(x, y)
    assert loss.shape == ()
    assert not loss.requires_grad
    assert torch.allclose(loss, expected, atol=1e-6)


def test_micro_batches_accumulate_to_the_full_batch_update() -> None:
    full, split = _model(), _model()
    x, y = _batch(12)
    loss_full = _step(full, grad_clip=1.0)(x, y)
    loss_split = _step(split, grad_clip=1.0, micro_batch=5)(x, y)  # 5 + 5 + 2
    assert torch.allclose(loss_full, loss_split, atol=1e-6)
    # the (clipped) gradients the optimizer stepped with are those of the whole batch
    for a, b in zip(full.parameters(), split.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7)


def test_gradients_are_clipped_to_the_norm() -> None:
    model = _model()
    before = copy.deepcopy(model)
    x, y = _batch()
    _step(model, grad_clip=1e-3)(x, y)
    norm = torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])
    )
    assert norm <= 1e-3 * 1.001
    unclipped = copy.deepcopy(before)
    _step(unclipped, grad_clip=None)(x, y)
    norm_free = torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in unclipped.parameters() if p.grad is not None])
    )
    assert norm_free > 1e-2


def test_scheduler_steps_once_per_call() -> None:
    model = _model()
    opt = build_optimizer(model, 1e-2, 0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / 4)
    step = TrainStep(model, opt, sched, micro_batch=4)
    x, y = _batch()
    rates = []
    for _ in range(3):
        step(x, y)
        rates.append(opt.param_groups[0]["lr"])
    assert rates == pytest.approx([5e-3, 7.5e-3, 1e-2])
    assert step.steps == 3


def test_training_steps_reduce_the_loss() -> None:
    model = _model(dropout=0.1)
    step = _step(model)
    x, y = _batch(32)
    first = step(x, y)
    for _ in range(20):
        last = step(x, y)
    assert last < 0.5 * first


def test_weight_decay_applies_to_matrices_only() -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = build_optimizer(model, 0.1, 0.5)
    for p in model.parameters():  # zero gradients: AdamW's update is then decay alone
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        else:
            p.grad.zero_()
    opt.step()
    for name, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if p.dim() >= 2 else 1.0
        assert torch.allclose(p.detach(), before[name] * factor, atol=1e-7), name


def test_step_matches_plain_adamw_with_clipping() -> None:
    """The flat-buffer optimizer steps exactly as per-parameter AdamW would."""
    model = _model()
    plain = copy.deepcopy(model)
    step = TrainStep(model, build_optimizer(model, 1e-2, 0.1), grad_clip=0.5)
    decay = [p for p in plain.parameters() if p.dim() >= 2]
    no_decay = [p for p in plain.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-2,
        foreach=False,
    )
    for seed in range(3):
        x, y = _batch(seed=seed)
        step(x, y)
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(plain(x), y).backward()
        torch.nn.utils.clip_grad_norm_(list(plain.parameters()), 0.5)
        opt.step()
    d = ARCH.d_model
    for (name, a), b in zip(model.named_parameters(), plain.parameters(), strict=True):
        if name.endswith("qkv.bias"):
            # softmax ignores a key bias: its true gradient is 0, and Adam turns the
            # rounding noise there into lr-sized steps that differ between summation orders
            a, b = torch.cat([a[:d], a[2 * d :]]), torch.cat([b[:d], b[2 * d :]])
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name


def test_restored_state_keeps_training_the_model() -> None:
    """The trainer's best-epoch restore (load_state_dict) writes into the parameters the
    optimizer steps, and a stray `model.zero_grad()` does not detach them."""
    model = _model()
    step = _step(model)
    x, y = _batch()
    step(x, y)
    best = {k: v.clone() for k, v in model.state_dict().items()}
    step(x, y)
    model.load_state_dict(best)
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())
    model.zero_grad(set_to_none=True)
    step(x, y)
    twin = _model()
    twin_step = _step(twin)
    twin_step(x, y)
    twin_step(x, y)  # same optimizer history, then the same weights as the restored ones
    twin.load_state_dict(best)
    twin_step(x, y)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7)
    assert not all(torch.equal(v, best[k]) for k, v in model.state_dict().items())


def test_bf16_autocast_step_on_cpu() -> None:
    model = _model()
    x, y = _batch()
    loss = _step(model, autocast_dtype=torch.bfloat16)(x, y)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_bf16_model_on_cpu_trains_like_fp32() -> None:
    """`precision = "auto"` is bf16 on CPUs with AMX, as a bf16 model with fp32 master
    weights: it must learn what fp32 learns (attention, whose bf16 CPU kernel is slow,
    runs in fp32 inside)."""
    x, y = _batch(n=64)
    losses = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = _model().to(dtype)
        step = _step(model)
        losses[dtype] = [float(step(x, y)) for _ in range(30)]
    bf16, fp32 = losses[torch.bfloat16], losses[torch.float32]
    assert bf16[-1] < 0.5 * bf16[0]  # it learns
    for a, b in zip(fp32, bf16, strict=True):
        assert abs(a - b) < 0.05 * max(a, b) + 0.01


def test_bf16_model_steps_fp32_masters() -> None:
    """Updates smaller than bf16's resolution accumulate in the fp32 masters, and the
    model's weights are the masters rounded to bf16 after every step."""
    model = _model().to(torch.bfloat16)
    optimizer = build_optimizer(model, 1e-5, 0.0)
    assert all(f.dtype == torch.float32 for f in optimizer.flat_params)
    start = [f.detach().clone() for f in optimizer.flat_params]
    step = TrainStep(model, optimizer)
    x, y = _batch()
    for _ in range(5):
        step(x, y)
    moved = [(f - s).abs().max().item() for f, s in zip(optimizer.flat_params, start, strict=True)]
    assert all(m > 0 for m in moved)
    for p in model.parameters():
        assert p.dtype == torch.bfloat16
    views = optimizer._low_flats  # the model's bf16 buffers: rounded masters
    for low, master in zip(views, optimizer.flat_params, strict=True):
        assert torch.equal(low, master.to(torch.bfloat16))


def test_bf16_model_accumulates_micro_batches_in_fp32() -> None:
    full, split = _model().to(torch.bfloat16), _model().to(torch.bfloat16)
    x, y = _batch(12)
    opt_full, opt_split = build_optimizer(full, 1e-2, 0.0), build_optimizer(split, 1e-2, 0.0)
    TrainStep(full, opt_full, grad_clip=None)(x, y)
    TrainStep(split, opt_split, grad_clip=None, micro_batch=5)(x, y)  # 5 + 5 + 2
    for a, b in zip(opt_full.flat_params, opt_split.flat_params, strict=True):
        assert a.grad is not None and b.grad is not None
        assert a.grad.dtype == torch.float32
        gap = torch.linalg.vector_norm(a.grad - b.grad)
        assert gap <= 0.02 * torch.linalg.vector_norm(a.grad)  # bf16 backward, fp32 sums


def test_cuda_graph_option_is_ignored_off_cuda() -> None:
    model = _model()
    step = _step(model, cuda_graph=True)
    assert step.cuda_graph is False
    x, y = _batch()
    for _ in range(5):
        step(x, y)
    assert step.steps == 5


def test_step_trains_in_training_mode_after_an_evaluation() -> None:
    model = _model(dropout=0.2)
    step = _step(model)
    x, y = _batch()
    model.eval()
    step(x, y)
    assert model.training
    assert all(m.training for m in model.modules())
