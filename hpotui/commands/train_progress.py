"""`hpotui train`'s progress on stderr: a rich bar per epoch (steps, samples/s, ETA of the
epoch) while stderr is a terminal, and one line per finished epoch with its losses
wherever stderr goes (a log file gets the lines, not the bar). stdout is left alone, so
`--json` stays pure JSON."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)


class EpochProgress:
    """Feed it `step()` before each training step (the trainer's stop check) and
    `epoch_ended(report)` after each epoch."""

    def __init__(
        self,
        epochs: int,
        steps_per_epoch: int,
        batch_size: int,
        *,
        quiet: bool,
        console: Console | None = None,
    ) -> None:
        self.console = console or Console(file=sys.stderr, highlight=False)
        self.epochs = epochs
        self.steps = max(1, steps_per_epoch)
        self.batch = batch_size
        self.quiet = quiet
        self.epoch = 1
        self.done_steps = 0
        self._epoch_start = time.monotonic()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if not quiet and self.console.is_terminal:
            self._bar = Progress(
                TextColumn("epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps · {task.fields[rate]} samples/s · ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._new_task()

    def _new_task(self) -> None:
        if self._bar is None:
            return
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._epoch_start = time.monotonic()
        self._task = self._bar.add_task(
            "train", total=self.steps, epoch=f"{self.epoch}/{self.epochs}", rate="-"
        )

    def step(self) -> bool:
        """Called before every step and once after each epoch; never asks to stop."""
        if self._bar is not None and self._task is not None and self.done_steps < self.steps:
            self.done_steps += 1
            elapsed = time.monotonic() - self._epoch_start
            rate = f"{self.done_steps * self.batch / elapsed:,.0f}" if elapsed > 0 else "-"
            self._bar.update(self._task, completed=self.done_steps, rate=rate)
        return False

    def epoch_ended(self, report: Any) -> None:
        samples = self.steps * self.batch
        epoch_s = max(1e-9, time.monotonic() - self._epoch_start)
        if not self.quiet:
            self.console.print(
                f"epoch {report.epoch:>3}/{self.epochs}  train {report.train_loss:.4f}  "
                f"val {report.val_loss:.4f}  lr {report.learning_rate:.2e}  "
                f"{samples / epoch_s:,.0f} samples/s  {report.elapsed_s:.1f}s"
            )
        self.epoch = report.epoch + 1
        self.done_steps = 0
        if self.epoch <= self.epochs:
            self._new_task()
        else:
            self.close()

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
