"""A fused group: K trials of one architecture trained as one model, each its own trial.

What each member keeps of its own (every `TrainParams` field but the two that shape the
group): its seed (initial weights exactly as a solo trial's, its own shuffling, so with
dropout 0 in fp32 its per-epoch losses equal the solo run's: tests/train/test_fused.py),
learning rate with its own warmup/cosine schedule, weight decay, gradient clip, dropout
and head dropout rates, patience, best epoch and early stopping. `epochs` and
`batch_size` are the group's: every member takes the same number of steps of the same
shape (the search fixes them per group: `engine.campaign.search.group_params`).

A member leaves the group when it finishes (its epochs run out, early stopping, a NaN
loss) or is pruned (`on_epoch` raised optuna.TrialPruned): it gets its result from its
best epoch's weights, and the group is re-packed without it, so the others run on at a
smaller K and nothing is computed for it any more. `should_stop` (interrupt) stops every
member: each gets TrialStopped. `on_done(member, result, error)` is called once per
member as it leaves, so each can be told to Optuna at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from engine.dataset.windows import PreparedData, WindowSet
from engine.errors import UserError
from engine.model.architecture import Architecture
from engine.model.fused import FusedPatchTST
from engine.model.patchtst import PatchTST
from engine.train.autotune import apply_run_choice
from engine.train.config import RunOptions, TrainParams
from engine.train.device import seed_everything, split_precision
from engine.train.fused_step import FusedAdamW, FusedStep
from engine.train.metrics import base_rate_bce, classification_metrics
from engine.train.result import EpochReport, TrainResult, TrialStopped
from engine.train.schedule import lr_factor
from engine.train.trainer import StopCheck, validate_params

MemberEpoch = Callable[[int, EpochReport], None]
MemberDone = Callable[[int, TrainResult | None, BaseException | None], None]

GROUP_FIELDS = ("epochs", "batch_size")  # what every member of a group shares


@dataclass
class _Member:
    """A member's early-stopping state and best weights (a row of the buffer, on CPU)."""

    index: int
    params: TrainParams
    curve: list[EpochReport] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    best_row: torch.Tensor | None = None
    stopped_early: bool = False
    diverged: bool = False
    error: BaseException | None = None  # what ended it, if not its epochs or patience


class FusedTrainer:
    """Trains `params` (one entry per member) of `arch` on `data` as one fused model."""

    def __init__(
        self,
        arch: Architecture,
        params: list[TrainParams],
        data: PreparedData,
        options: RunOptions = RunOptions(),
    ) -> None:
        if not params:
            raise ValueError("a fused group needs at least one trial")
        for p in params:
            validate_params(p)
        for name in GROUP_FIELDS:
            if len({getattr(p, name) for p in params}) > 1:
                raise UserError(f"fused trials must share {name}", where=name)
        self.arch, self.data, self.options = arch, data, options
        self.device = data.device
        spec = data.spec
        # timed as the solo model at K x the batch: the rows a fused step computes
        self.run_choice = apply_run_choice(
            arch,
            data.n_features,
            len(params) * min(params[0].batch_size, len(data.train)),
            self.device,
            options,
            context_len=spec.context_len,
            patch_len=spec.patch_len,
            stride=spec.stride,
        )
        self.dtype = self.run_choice.dtype
        model_dtype, self.autocast = split_precision(self.device, self.dtype)
        solos: list[PatchTST] = []
        for p in params:  # each member initialised exactly as its solo trial would be
            seed_everything(p.seed)
            with self.device if self.device.type == "cuda" else torch.device("cpu"):
                solos.append(
                    PatchTST(
                        arch,
                        data.n_features,
                        context_len=spec.context_len,
                        patch_len=spec.patch_len,
                        stride=spec.stride,
                        dropout=p.dropout,
                        head_dropout=p.head_dropout,
                        dropout_sites=options.dropout_sites,
                    ).to(self.device, model_dtype)
                )
        self.template = solos[0]
        self.n_params = sum(t.numel() for t in self.template.parameters())
        self.model = FusedPatchTST.stack(
            solos, [p.dropout for p in params], [p.head_dropout for p in params]
        )
        del solos[1:]
        n_train = len(data.train)
        self.batch_size = min(params[0].batch_size, n_train)
        self.steps_per_epoch = n_train // self.batch_size
        self.epochs = params[0].epochs
        self.total_steps = self.epochs * self.steps_per_epoch
        self.optimizer = FusedAdamW(
            self.model, [p.weight_decay for p in params], [p.grad_clip for p in params]
        )
        self.step = FusedStep(
            self.model,
            self.optimizer,
            autocast_dtype=self.autocast,
            cuda_graph=self.device.type == "cuda",
        )
        self.members = [_Member(i, p) for i, p in enumerate(params)]
        self.active = list(self.members)  # row r of the model is self.active[r]
        self.shuffles = [torch.Generator().manual_seed(p.seed) for p in params]
        self.eval_batch = max(1, self.batch_size * max(1, arch.n_layers // 2) // len(params))

    def current_lrs(self) -> list[float]:
        s = self.step.steps
        return [
            m.params.learning_rate * lr_factor(s, m.params.warmup_steps, self.total_steps)
            for m in self.active
        ]

    def run(
        self,
        on_epoch: MemberEpoch | None = None,
        should_stop: StopCheck | None = None,
        on_done: MemberDone | None = None,
    ) -> list[TrainResult | BaseException]:
        """Train until every member has left; each member's result or what stopped it."""
        started = time.perf_counter()
        outcomes: dict[int, TrainResult | BaseException] = {}

        def finish(member: _Member, error: BaseException | None) -> None:
            result = None if error is not None else self._result(member, started)
            outcomes[member.index] = error if error is not None else result  # type: ignore[assignment]
            if on_done is not None:
                on_done(member.index, result, error)

        for epoch in range(1, self.epochs + 1):
            try:
                losses = self._train_epoch(should_stop)
            except TrialStopped as interrupted:
                for member in self.active:
                    finish(member, interrupted)
                self.active = []
                break
            val = self._val_losses()
            leaving: list[int] = []
            for row, member in enumerate(self.active):
                if self._end_epoch(row, member, epoch, losses[row], val[row], started, on_epoch):
                    leaving.append(row)
            for row in leaving:
                member = self.active[row]
                finish(member, member.error)
            if leaving:
                self._repack([r for r in range(len(self.active)) if r not in leaving])
            if not self.active:
                break
            if should_stop is not None and should_stop():
                after = TrialStopped(f"stopped after epoch {epoch}")
                for member in self.active:
                    finish(member, after)
                self.active = []
                break
        return [outcomes[m.index] for m in self.members]

    def _end_epoch(
        self,
        row: int,
        member: _Member,
        epoch: int,
        train_loss: float,
        val_loss: float,
        started: float,
        on_epoch: MemberEpoch | None,
    ) -> bool:
        """Record one member's epoch; True when it leaves the group now."""
        if val_loss < member.best_loss:  # False for NaN
            member.best_loss, member.best_epoch = val_loss, epoch
            member.best_row = self.model.rows[row].detach().to("cpu", copy=True)
        report = EpochReport(
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            elapsed_s=time.perf_counter() - started,
            learning_rate=self._lr_of(member),
            objective=val_loss,  # a fused group selects by validation BCE
        )
        member.curve.append(report)
        if on_epoch is not None:
            try:
                on_epoch(member.index, report)
            except Exception as exc:  # optuna.TrialPruned, or a failing callback
                member.error = exc
                return True
        if not math.isfinite(train_loss):
            member.diverged = True
            return True
        if epoch - member.best_epoch >= member.params.patience and epoch < self.epochs:
            member.stopped_early = True
            return True
        return epoch >= self.epochs

    def _lr_of(self, member: _Member) -> float:
        """The rate the member's next step runs at (as the solo trainer reports it)."""
        p = member.params
        return p.learning_rate * lr_factor(self.step.steps, p.warmup_steps, self.total_steps)

    def _repack(self, keep_rows: list[int]) -> None:
        self.active = [self.active[r] for r in keep_rows]
        if keep_rows:
            self.optimizer.repack(keep_rows)
            self.step.invalidate()

    def _train_epoch(self, should_stop: StopCheck | None) -> list[float]:
        train, size = self.data.train, self.batch_size
        orders = torch.stack(
            [torch.randperm(len(train), generator=self.shuffles[m.index]) for m in self.active]
        ).to(self.device)  # (K, n_train): each member its own shuffle
        total = torch.zeros(len(self.active), device=self.device)
        for index in range(self.steps_per_epoch):
            if should_stop is not None and should_stop():
                raise TrialStopped(f"stopped at step {self.step.steps}")
            batch = orders[:, index * size : (index + 1) * size]  # (K, B)
            total += self.step(train.x[batch], train.y[batch], self.current_lrs())
        return [float(v) / self.steps_per_epoch for v in total.tolist()]  # one sync

    @torch.no_grad()
    def _val_losses(self) -> list[float]:
        logits = self._predict_all(self.data.val)  # (K, N)
        y = self.data.val.y.unsqueeze(0).expand_as(logits)
        losses = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=1)
        return [float(v) for v in losses.tolist()]

    @torch.no_grad()
    def _predict_all(self, windows: WindowSet) -> torch.Tensor:
        self.model.eval()
        chunks = [
            self._forward(windows.x[start : start + self.eval_batch])
            for start in range(0, len(windows), self.eval_batch)
        ]
        k = len(self.active)
        return torch.cat(chunks, dim=1) if chunks else torch.zeros(k, 0, device=self.device)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor
        if self.autocast is None:
            out = self.model(x)
        else:
            with torch.autocast(self.device.type, dtype=self.autocast):
                out = self.model(x)
        return out.float()

    @torch.no_grad()
    def _predict_member(self, member: _Member, windows: WindowSet) -> torch.Tensor:
        """(N,) logits of the member's best weights, from a solo model of them."""
        assert member.best_row is not None
        state = self.model.row_state_dict(member.best_row.to(self.device))
        self.template.load_state_dict(state)
        self.template.eval()
        size = self.eval_batch * max(1, len(self.members))
        chunks = []
        for start in range(0, len(windows), size):
            x = windows.x[start : start + size]
            if self.autocast is None:
                chunks.append(self.template(x).float())
            else:
                with torch.autocast(self.device.type, dtype=self.autocast):
                    chunks.append(self.template(x).float())
        return torch.cat(chunks) if chunks else torch.zeros(0, device=self.device)

    def _result(self, member: _Member, started: float) -> TrainResult:
        data = self.data
        val_metrics: dict[str, float] = {}
        test_metrics = None
        if member.best_row is not None:
            val_metrics = _metrics(self._predict_member(member, data.val), data.val, None)
            if self.options.evaluate_test and len(data.test):
                test_metrics = _metrics(
                    self._predict_member(member, data.test),
                    data.test,
                    val_metrics["threshold_best_f1"],
                )
        train_rate = float(data.train.y.mean().item())
        val_metrics["base_rate_bce"] = base_rate_bce(train_rate, data.val.y.cpu().numpy())
        if test_metrics is not None:
            test_metrics["base_rate_bce"] = base_rate_bce(train_rate, data.test.y.cpu().numpy())
        curve = member.curve
        elapsed = curve[-1].elapsed_s if curve else 0.0
        samples = self.steps_per_epoch * self.batch_size * len(curve)
        return TrainResult(
            value=member.best_loss if member.best_epoch else math.nan,
            best_epoch=member.best_epoch,
            epochs_run=len(curve),
            curve=curve,
            val_metrics=val_metrics,
            test_metrics=test_metrics,
            duration_s=time.perf_counter() - started,
            stopped_early=member.stopped_early,
            n_params=self.n_params,
            device=str(self.device),
            micro_batch=self.batch_size,
            extra={
                "architecture": self.arch.to_dict(),
                "params": member.params.to_dict(),
                "options": self.options.to_dict(),
                "precision": "fp32" if self.dtype is None else str(self.dtype).split(".")[-1],
                "run_choice": self.run_choice.to_dict(),
                "batch_size": self.batch_size,
                "steps_per_epoch": self.steps_per_epoch,
                "optimizer_steps": self.steps_per_epoch * len(curve),
                "diverged": member.diverged,
                "train_label_rate": train_rate,
                "data": data.summary(),
                "samples_per_s": round(samples / elapsed, 1) if elapsed > 0 else math.nan,
                "fused_k": len(self.members),
            },
        )


def _metrics(logits: torch.Tensor, windows: WindowSet, threshold: float | None) -> dict[str, float]:
    return classification_metrics(
        logits.cpu().double().numpy(), windows.y.cpu().double().numpy(), threshold
    )


def train_group(
    arch: Architecture,
    params: list[TrainParams],
    data: PreparedData,
    options: RunOptions = RunOptions(),
    *,
    on_epoch: MemberEpoch | None = None,
    should_stop: StopCheck | None = None,
    on_done: MemberDone | None = None,
) -> list[TrainResult | BaseException]:
    """Train a fused group; per member its TrainResult, or the exception that ended it
    (optuna.TrialPruned, TrialStopped, or an error raised by `on_epoch`)."""
    return FusedTrainer(arch, params, data, options).run(on_epoch, should_stop, on_done)
