"""Memory guard: estimate a trial's peak memory before it starts, shrink or refuse it.

The reference pipeline started a 2B architecture that needed 115 GB at batch 128 on a
128 GB machine; it swapped and sat at 0% CPU for two days (original-pipeline.md, item 11).
Here a trial's peak is estimated from its shape; when it does not fit the device's
available memory the micro-batch shrinks (gradient accumulation keeps the effective
batch), and when even micro-batch 1 does not fit the trial fails at once, saying why.

The estimate of one training step of PatchTST with AdamW:
- weights, gradients and AdamW's two moments: 4 fp32 copies of the parameters (16
  bytes each). A bf16 model on CPU (engine.train.device.split_precision) has bf16 weights
  and gradients (4), fp32 masters, their gradients and the moments (16), and the fp32
  weights it was built in (4: freed after the cast, but in the measured RSS peak);
- the step's temporaries, which live only after the backward pass has freed the
  activations: fused AdamW and foreach clipping work in place (on CPU over one flat
  buffer, engine.train.step.build_optimizer), so the peak there is one encoder layer's
  gradients, computed before autograd adds them into the gradient buffer;
- activations saved for backward, per token (batch x patches): the residual stream and
  LayerNorm inputs (fp32), the qkv, attention, projection inputs and both feed-forward
  tensors (in the compute dtype), dropout masks (1 byte), attention scores if the
  fused kernel is not used, plus one layer of gradient workspace during backward; the
  `reference` dropout sites add the feed-forward mask and the attention weights' mask.
It is checked against measured peaks within +-30%: RSS growth on CPU in
tests/model/test_memory.py, the CUDA allocator's peak over CUDA-graph training steps in
tests/gpu/test_cuda.py (on an H200: the estimate 2-17% above the peak, fp32 and bf16).
"""

from __future__ import annotations

from typing import Any

import psutil
import torch

from engine.model.architecture import Architecture
from engine.model.dropout_sites import DEFAULT as DEFAULT_SITES
from engine.model.dropout_sites import DropoutSites
from engine.model.params import count_params, n_patches
from engine.train.device import split_precision
from engine.train.result import TrialDoesNotFit

# fraction of the available memory a trial may plan to use: the estimate is +-30%
SAFETY = 0.8


def _bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def activation_bytes(
    arch: Architecture,
    n_features: int,
    batch_size: int,
    *,
    context_len: int = 60,
    patch_len: int = 10,
    stride: int = 5,
    dtype: torch.dtype = torch.float32,
    dropout_sites: DropoutSites = DEFAULT_SITES,
) -> int:
    """Bytes saved for backward by one forward pass, plus one layer of workspace."""
    d, ff, h = arch.d_model, arch.d_ff, arch.n_heads
    n = n_patches(context_len, patch_len, stride)
    tokens = batch_size * n
    act = _bytes(dtype)
    fp32 = 4
    # per layer, per token: LN inputs (2D, fp32); LN outputs as linear inputs (2D),
    # qkv (3D) and the attention kernel's contiguous q, k, v (3D), attention out (D)
    # and its contiguous copy for proj (D), ff1 out and GELU out (2F) in the compute
    # dtype; two dropout masks (2D bytes); softmax statistics (H, fp32)
    per_token = 2 * d * fp32 + (10 * d + 2 * ff) * act + 2 * d + h * fp32
    # `ffn_inner` dropout: its d_ff-wide mask, saved, and the mask's making (transient):
    # +28% measured peak RSS at d128-L8-ff512, batch 512, against the default sites
    if "ffn_inner" in dropout_sites:
        per_token += 2 * ff * act
    scores = batch_size * h * n * n * fp32
    if "attention" in dropout_sites:  # explicit attention: weights, mask, dropped weights
        scores *= 3
    per_layer = tokens * per_token + scores
    # embedding: patches, embedding output, dropout mask; head: final LN in/out, mask
    edges = tokens * (patch_len * n_features * act + 3 * d * fp32 + 2 * d)
    workspace = tokens * (4 * d + 2 * ff) * fp32  # gradients in flight for one layer
    return arch.n_layers * per_layer + edges + workspace


def estimate_peak_bytes(
    arch: Architecture,
    n_features: int,
    batch_size: int,
    *,
    context_len: int = 60,
    patch_len: int = 10,
    stride: int = 5,
    dtype: torch.dtype = torch.float32,
    device_type: str = "cpu",
    fused: int = 1,
    dropout_sites: DropoutSites = DEFAULT_SITES,
) -> int:
    """Peak bytes of one training step at `batch_size`, computing in `dtype`.

    `fused` = K > 1: a fused group of K trials (`engine.model.fused`): K times the
    weights, optimizer state, activations and inputs, and the fused AdamW's temporaries
    (three (K, row) fp32 buffers: the clip's scaled gradient, the step, its denominator),
    which live after backward has freed the activations.
    """
    params = count_params(arch, n_features, context_len, patch_len, stride)
    model_dtype, _ = split_precision(torch.device(device_type), dtype)
    state = fused * params * (16 if model_dtype is None else 24)
    acts = activation_bytes(
        arch,
        n_features,
        batch_size * fused,
        context_len=context_len,
        patch_len=patch_len,
        stride=stride,
        dtype=dtype,
        dropout_sites=dropout_sites,
    )
    d, ff = arch.d_model, arch.d_ff
    layer = 4 * d * d + 2 * d * ff + 9 * d + ff  # qkv, proj, ff1, ff2, two LayerNorms
    step_temporaries = max(layer, patch_len * n_features * d) * 4
    if fused > 1:
        step_temporaries = max(step_temporaries, 3 * fused * params * 4)
    inputs = batch_size * context_len * n_features * 4 * (2 if device_type == "cpu" else 1)
    return state + max(acts, step_temporaries) + inputs * fused


def available_memory_bytes(device: torch.device) -> int:
    """Memory a new trial may use on `device` now: free GPU memory, or available RAM."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        mps: Any = getattr(torch, "mps", None)
        if mps is not None and hasattr(mps, "recommended_max_memory"):
            return max(0, int(mps.recommended_max_memory()) - int(mps.driver_allocated_memory()))
    return int(psutil.virtual_memory().available)


def _format(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def plan_micro_batch(
    arch: Architecture,
    n_features: int,
    batch_size: int,
    device: torch.device,
    *,
    available: int | None = None,
    dtype: torch.dtype = torch.float32,
    context_len: int = 60,
    patch_len: int = 10,
    stride: int = 5,
    dropout_sites: DropoutSites = DEFAULT_SITES,
) -> int:
    """Largest micro-batch <= batch_size whose estimated peak fits the device.

    `available` overrides the device's measured free memory (RunOptions's
    memory_limit_bytes). The trial then accumulates gradients over
    ceil(batch_size / micro_batch) micro-batches, so its effective batch is unchanged.
    Raises TrialDoesNotFit with the reason when even micro-batch 1 does not fit.
    """
    limit = available if available is not None else available_memory_bytes(device)
    budget = int(limit * SAFETY)

    def peak(batch: int) -> int:
        return estimate_peak_bytes(
            arch,
            n_features,
            batch,
            context_len=context_len,
            patch_len=patch_len,
            stride=stride,
            dtype=dtype,
            device_type=device.type,
            dropout_sites=dropout_sites,
        )

    if peak(batch_size) <= budget:
        return batch_size
    if peak(1) > budget:
        raise TrialDoesNotFit(
            f"{arch.label} does not fit on {device}: about {_format(peak(1))} needed at "
            f"micro-batch 1 (weights, gradients, AdamW state, activations), "
            f"{_format(limit)} available"
        )
    low, high = 1, batch_size  # peak(low) fits, peak(high) does not
    while high - low > 1:
        mid = (low + high) // 2
        if peak(mid) <= budget:
            low = mid
        else:
            high = mid
    return low


def max_fused_trials(
    arch: Architecture,
    n_features: int,
    batch_size: int,
    device: torch.device,
    *,
    cap: int,
    available: int | None = None,
    dtype: torch.dtype = torch.float32,
    context_len: int = 60,
    patch_len: int = 10,
    stride: int = 5,
    dropout_sites: DropoutSites = DEFAULT_SITES,
) -> int:
    """Largest K <= cap whose fused step at the full `batch_size` fits the device
    (a fused group does not split its batch); 0 when not even K = 1 does."""
    limit = available if available is not None else available_memory_bytes(device)
    budget = int(limit * SAFETY)
    for k in range(max(1, cap), 0, -1):
        peak = estimate_peak_bytes(
            arch,
            n_features,
            batch_size,
            context_len=context_len,
            patch_len=patch_len,
            stride=stride,
            dtype=dtype,
            device_type=device.type,
            fused=k,
            dropout_sites=dropout_sites,
        )
        if peak <= budget:
            return k
    return 0
