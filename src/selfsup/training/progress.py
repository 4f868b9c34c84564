"""Progress for output that is not a terminal (logs, pipes, CI): a few plain lines instead of a redrawn bar."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import Callback

LINES = 10  # about this many progress lines per run
MAX_SILENCE_S = 60.0  # and at least one a minute


class PlainProgress(Callback):
    """One line when training starts, then about every tenth of the steps (at least once a minute), and one at
    the end: step, share done, loss, elapsed and remaining time."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.total = 0
        self._start = self._last_time = 0.0
        self._first_step = self._last_step = 0

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.total = int(trainer.estimated_stepping_batches)
        self._start = self._last_time = time.perf_counter()
        self._first_step = self._last_step = trainer.global_step
        resumed = f", resuming at step {trainer.global_step}" if trainer.global_step else ""
        self._print(f"training: {self.total} steps{resumed}")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step, now = trainer.global_step, time.perf_counter()
        if step - self._last_step >= max(1, self.total // LINES) or now - self._last_time >= MAX_SILENCE_S:
            self._report(trainer, step, now)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step != self._last_step:
            self._report(trainer, trainer.global_step, time.perf_counter())

    def _report(self, trainer: L.Trainer, step: int, now: float) -> None:
        elapsed = now - self._start
        done = max(1, step - self._first_step)
        left = elapsed / done * max(0, self.total - step)
        loss = trainer.callback_metrics.get("loss_step")
        loss_text = f", loss {float(loss):.4f}" if loss is not None else ""
        self._print(
            f"step {step}/{self.total} ({100 * step / max(1, self.total):.0f}%){loss_text}, "
            f"{elapsed:.0f} s elapsed, about {left:.0f} s left"
        )
        self._last_step, self._last_time = step, now
