"""One trial: train a PatchTST on prepared windows, keep the best epoch, report metrics.

What training does with each `TrainParams` field (every one changes training; each has a
test in tests/train/test_trainer.py):
- learning_rate, weight_decay: AdamW (`engine.train.step.build_optimizer`). Weight decay
  applies to parameters with two or more dimensions (the linear weights and the learned
  positional embedding); biases and LayerNorm weights are never decayed.
- warmup_steps: linear warmup over that many optimizer steps, then cosine decay to zero
  at the run's last step (`engine.train.schedule`).
- dropout (embeddings and both residual branches of each layer), head_dropout (before the
  linear head): set on the model, active in training only.
- grad_clip: clip of the global gradient norm before each step (0 turns it off).
- batch_size: the effective batch; the memory guard may split it into micro-batches
  with gradient accumulation, which keeps the same effective batch. Each epoch draws a
  fresh permutation and drops the last incomplete batch (every step has the same shape,
  so a captured CUDA graph serves all of them); a training split smaller than the batch
  is one batch.
- epochs, patience: at most `epochs` epochs; training stops after `patience` epochs
  without a better validation objective, and the weights of the best epoch are restored.
- seed: seeds Python, NumPy and torch (weights, dropout) and the shuffling.

The trial's value is the best epoch's objective (`RunOptions.objective`): validation BCE
(default) or 1 - validation ROC-AUC; both are measured every epoch. The loss is BCE with
logits; probabilities exist only in `engine.train.metrics`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from engine.dataset.windows import PreparedData, WindowSet
from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.model.patchtst import PatchTST
from engine.train.autotune import apply_run_choice
from engine.train.config import RunOptions, TrainParams
from engine.train.device import seed_everything, split_precision
from engine.train.memory import plan_micro_batch
from engine.train.metrics import base_rate_bce, classification_metrics
from engine.train.result import EpochReport, TrainResult, TrialStopped
from engine.train.schedule import warmup_cosine
from engine.train.step import TrainStep, build_optimizer

EpochCallback = Callable[[EpochReport], None]
StopCheck = Callable[[], bool]


def validate_params(params: TrainParams) -> None:
    """UserError naming the first TrainParams field out of range."""
    checks: list[tuple[str, bool, str]] = [
        ("learning_rate", params.learning_rate > 0, "> 0"),
        ("epochs", params.epochs >= 1, ">= 1"),
        ("batch_size", params.batch_size >= 1, ">= 1"),
        ("weight_decay", params.weight_decay >= 0, ">= 0"),
        ("warmup_steps", params.warmup_steps >= 0, ">= 0"),
        ("dropout", 0 <= params.dropout < 1, "in [0, 1)"),
        ("head_dropout", 0 <= params.head_dropout < 1, "in [0, 1)"),
        ("grad_clip", params.grad_clip >= 0, ">= 0 (0 = off)"),
        ("patience", params.patience >= 1, ">= 1"),
    ]
    for name, ok, rule in checks:
        if not ok:
            raise UserError(f"{name} must be {rule}, got {getattr(params, name)}", where=name)


class Trainer:
    """A trial's model, optimizer and loop. `train_trial` is the one-call form; tests
    use the class to look at the model and optimizer afterwards."""

    def __init__(
        self,
        arch: Architecture,
        params: TrainParams,
        data: PreparedData,
        options: RunOptions = RunOptions(),
    ) -> None:
        validate_params(params)
        self.arch, self.params, self.data, self.options = arch, params, data, options
        self.device = data.device
        spec = data.spec
        # precision, attention kernel and threads: timed once per class on this machine
        self.run_choice = apply_run_choice(
            arch,
            data.n_features,
            min(params.batch_size, len(data.train)),
            self.device,
            options,
            context_len=spec.context_len,
            patch_len=spec.patch_len,
            stride=spec.stride,
        )
        seed_everything(params.seed)
        self.dtype = self.run_choice.dtype
        # bf16 as a bf16 model with fp32 masters in the optimizer (CPU), or as autocast
        model_dtype, self.autocast = split_precision(self.device, self.dtype)
        # On CUDA the model is built in place: initialising the 1.6B d1024-L128 on the
        # CPU first took 16 s on a 2-core machine. Elsewhere: built on the CPU, moved.
        with self.device if self.device.type == "cuda" else torch.device("cpu"):
            self.model = PatchTST(
                arch,
                data.n_features,
                context_len=spec.context_len,
                patch_len=spec.patch_len,
                stride=spec.stride,
                dropout=params.dropout,
                head_dropout=params.head_dropout,
                dropout_sites=options.dropout_sites,
            ).to(self.device, model_dtype)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        n_train = len(data.train)
        self.batch_size = min(params.batch_size, n_train)
        self.micro_batch = plan_micro_batch(
            arch,
            data.n_features,
            self.batch_size,
            self.device,
            available=options.memory_limit_bytes,
            dtype=self.dtype or torch.float32,
            context_len=spec.context_len,
            patch_len=spec.patch_len,
            stride=spec.stride,
            dropout_sites=options.dropout_sites,
        )
        # Inference keeps no activations for backward: a batch n_layers/2 times the
        # micro-batch needs about what training's saved activations need, and far fewer
        # launches per evaluation (small deep models are launch-bound on GPUs).
        self.eval_batch = self.micro_batch * max(1, arch.n_layers // 2)
        self.steps_per_epoch = n_train // self.batch_size
        use_graph = self.device.type == "cuda"
        self.optimizer = build_optimizer(
            self.model, params.learning_rate, params.weight_decay, capturable=use_graph
        )
        self.total_steps = params.epochs * self.steps_per_epoch
        self.scheduler = warmup_cosine(self.optimizer, params.warmup_steps, self.total_steps)
        self.step = TrainStep(
            self.model,
            self.optimizer,
            self.scheduler,
            grad_clip=params.grad_clip,
            autocast_dtype=self.autocast,
            micro_batch=self.micro_batch if self.micro_batch < self.batch_size else None,
            cuda_graph=use_graph,
        )
        self.shuffle = torch.Generator().manual_seed(params.seed)

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def run(
        self, on_epoch: EpochCallback | None = None, should_stop: StopCheck | None = None
    ) -> TrainResult:
        params = self.params
        started = time.perf_counter()
        curve: list[EpochReport] = []
        best_loss, best_epoch = math.inf, 0
        best_state: dict[str, torch.Tensor] | None = None
        stopped_early = diverged = False
        for epoch in range(1, params.epochs + 1):
            train_loss = self._train_epoch(should_stop)
            val_loss, val_auc = self.evaluate_val()
            score = val_loss if self.options.objective == "val_bce" else 1.0 - val_auc
            if score < best_loss:  # False for NaN
                best_loss, best_epoch = score, epoch
                best_state = self._snapshot()
            report = EpochReport(
                epoch=epoch,
                train_loss=train_loss,
                val_loss=val_loss,
                elapsed_s=time.perf_counter() - started,
                learning_rate=self.current_lr(),
                val_auc=val_auc,
                objective=score,
            )
            curve.append(report)
            if on_epoch is not None:
                on_epoch(report)  # may raise optuna.TrialPruned: let it through
            if not math.isfinite(train_loss):
                diverged = True
                break
            if epoch - best_epoch >= params.patience and epoch < params.epochs:
                stopped_early = True
                break
            if should_stop is not None and should_stop():
                raise TrialStopped(f"stopped after epoch {epoch}")
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return self._result(curve, best_loss, best_epoch, stopped_early, diverged, started)

    def _train_epoch(self, should_stop: StopCheck | None) -> float:
        train, size = self.data.train, self.batch_size
        order = torch.randperm(len(train), generator=self.shuffle).to(self.device)
        total = torch.zeros((), device=self.device)
        for index in range(self.steps_per_epoch):
            if should_stop is not None and should_stop():
                raise TrialStopped(f"stopped at step {self.step.steps}")
            batch = order[index * size : (index + 1) * size]
            total += self.step(train.x[batch], train.y[batch])
        return float(total.item()) / self.steps_per_epoch  # one sync per epoch

    @torch.no_grad()
    def predict(self, windows: WindowSet) -> torch.Tensor:
        """(N,) float32 logits of the current weights, in eval mode (no dropout)."""
        self.model.eval()
        chunks = []
        size = self.eval_batch
        for start in range(0, len(windows), size):
            x = windows.x[start : start + size]
            if self.autocast is None:
                chunks.append(self.model(x).float())
            else:
                with torch.autocast(self.device.type, dtype=self.autocast):
                    chunks.append(self.model(x).float())
        return torch.cat(chunks) if chunks else torch.zeros(0, device=self.device)

    def evaluate_val(self) -> tuple[float, float]:
        """(BCE, ROC-AUC) of the current weights on the validation windows."""
        logits = self.predict(self.data.val)
        labels = self.data.val.y
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        y = labels.cpu().numpy()
        two_classes = bool(y.min() < 0.5 <= y.max()) if len(y) else False
        auc = roc_auc_score(y, logits.cpu().double().numpy()) if two_classes else math.nan
        return float(loss.item()), float(auc)

    def evaluate_loss(self, windows: WindowSet) -> float:
        logits = self.predict(windows)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, windows.y)
        return float(loss.item())

    def _snapshot(self) -> dict[str, torch.Tensor]:
        # Off the accelerator: the best weights should not double its memory.
        keep = torch.device("cpu")
        return {k: v.detach().to(keep, copy=True) for k, v in self.model.state_dict().items()}

    def _metrics(self, windows: WindowSet, threshold: float | None) -> dict[str, float]:
        logits = self.predict(windows).cpu().double().numpy()  # MPS has no float64
        return classification_metrics(logits, windows.y.cpu().double().numpy(), threshold)

    def _result(
        self,
        curve: list[EpochReport],
        best_loss: float,
        best_epoch: int,
        stopped_early: bool,
        diverged: bool,
        started: float,
    ) -> TrainResult:
        data = self.data
        val_metrics = self._metrics(data.val, None)
        test_metrics = None
        if self.options.evaluate_test and len(data.test):
            test_metrics = self._metrics(data.test, val_metrics["threshold_best_f1"])
        train_rate = float(data.train.y.mean().item())
        val_metrics["base_rate_bce"] = base_rate_bce(train_rate, data.val.y.cpu().numpy())
        if test_metrics is not None:
            test_metrics["base_rate_bce"] = base_rate_bce(train_rate, data.test.y.cpu().numpy())
        return TrainResult(
            value=best_loss if best_epoch else math.nan,
            best_epoch=best_epoch,
            epochs_run=len(curve),
            curve=curve,
            val_metrics=val_metrics,
            test_metrics=test_metrics,
            duration_s=time.perf_counter() - started,
            stopped_early=stopped_early,
            n_params=self.n_params,
            device=str(self.device),
            micro_batch=self.micro_batch,
            extra={
                "architecture": self.arch.to_dict(),
                "params": self.params.to_dict(),
                "options": self.options.to_dict(),
                "precision": "fp32" if self.dtype is None else str(self.dtype).split(".")[-1],
                "run_choice": self.run_choice.to_dict(),
                "batch_size": self.batch_size,
                "steps_per_epoch": self.steps_per_epoch,
                "optimizer_steps": self.step.steps,
                "diverged": diverged,
                "train_label_rate": train_rate,
                "data": data.summary(),
                "samples_per_s": _throughput(curve, self.steps_per_epoch * self.batch_size),
            },
        )


def _throughput(curve: list[EpochReport], samples_per_epoch: int) -> float:
    if not curve or curve[-1].elapsed_s <= 0:
        return float("nan")
    return float(np.round(samples_per_epoch * len(curve) / curve[-1].elapsed_s, 1))


def train_trial(
    arch: Architecture,
    params: TrainParams,
    data: PreparedData,
    options: RunOptions = RunOptions(),
    *,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
) -> TrainResult:
    """Train one configuration on `data` (already on its device) and evaluate it.

    `on_epoch` gets every epoch's report (exceptions from it, such as optuna.TrialPruned,
    propagate); `should_stop` is checked before every step and after every epoch and
    raises TrialStopped when it returns True. The memory guard raises TrialDoesNotFit
    before training when even a micro-batch of 1 would not fit. The test split is only
    evaluated when `options.evaluate_test`.
    """
    return Trainer(arch, params, data, options).run(on_epoch, should_stop)
